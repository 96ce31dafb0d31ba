"""Pixel observations: the convolutional encoder, random-shift augmentation, and the agent that
puts the encoder in front of Cal-QL's unchanged critics and policy (docs/algorithm.md section 10).

The encoder (a few 3x3 convolutions, then a linear projection with LayerNorm and tanh: the
DrQ / DrQ-v2 encoder of Yarats et al. 2021, also RLPD's pixel networks) belongs to the critic: its
parameters are the critic's `params["encoder"]`, trained by the critic loss only. The policy reads
its features with the gradient stopped; it keeps a copy of the encoder's parameters in
`actor.params["encoder"]`, refreshed after every gradient step, so that acting needs the actor
alone. As DrQ-v2, the target critics (heads only) score the online encoder's features of s'.
"""

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState

from calql.agent.networks import CriticEnsemble, TanhGaussianPolicy
from calql.config import AgentConfig


class Encoder(nn.Module):
    """uint8 images (..., H, W, C) -> features (..., F) in (-1, 1): 3x3 ReLU convolutions (no
    padding, `strides` each), then Dense -> LayerNorm -> tanh."""

    channels: Sequence[int]
    strides: Sequence[int]
    features: int

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = images.astype(jnp.float32) / 255.0
        for width, stride in zip(self.channels, self.strides):
            init = nn.initializers.orthogonal(np.sqrt(2.0))
            x = nn.relu(nn.Conv(width, (3, 3), strides=stride, padding="VALID", kernel_init=init)(x))
        x = x.reshape(x.shape[:-3] + (-1,))
        x = nn.Dense(self.features, kernel_init=nn.initializers.orthogonal(1.0))(x)
        return jnp.tanh(nn.LayerNorm()(x))


def random_shift(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """DrQ's augmentation: each (H, W, C) image of a (B, H, W, C) batch padded by `pad` pixels
    (edges repeated) and cropped back to H x W at a random offset. Shape and dtype kept."""
    height, width, channels = images.shape[-3:]
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * pad + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    return jax.vmap(crop)(padded, offsets)


@dataclasses.dataclass(frozen=True)
class PixelNetworks:
    """The modules of a pixel agent and the functions the state's TrainStates apply. One object per
    configuration (`pixel_networks`): the functions are static parts of the state's pytree."""

    encoder: Encoder
    heads: CriticEnsemble
    policy: TanhGaussianPolicy

    def encode(self, encoder_params, images: jax.Array) -> jax.Array:
        return cast(jax.Array, self.encoder.apply(encoder_params, images))

    def critic(self, params, images: jax.Array, actions: jax.Array) -> jax.Array:
        """Q of images (B, H, W, C) and actions (B, A) -> (E, B): the critic TrainState's apply_fn."""
        return cast(jax.Array, self.heads.apply(params["heads"], self.encode(params["encoder"], images), actions))

    def actor(self, params, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std) at images, the encoder copy's features with the gradient stopped."""
        features = jax.lax.stop_gradient(self.encode(params["encoder"], images))
        return self.policy_heads(params, features)

    def critic_heads(self, params, features: jax.Array, actions: jax.Array) -> jax.Array:
        """Q of features: the critics after the encoder (the update's feature-level view)."""
        return cast(jax.Array, self.heads.apply(params["heads"], features, actions))

    def policy_heads(self, params, features: jax.Array) -> tuple[jax.Array, jax.Array]:
        return cast(tuple[jax.Array, jax.Array], self.policy.apply(params["heads"], features))


@functools.cache
def pixel_networks(config: AgentConfig, action_dim: int) -> PixelNetworks:
    if len(config.encoder_channels) != len(config.encoder_strides):
        raise ValueError("--agent.encoder-channels and --agent.encoder-strides need one entry per convolution")
    return PixelNetworks(
        Encoder(tuple(config.encoder_channels), tuple(config.encoder_strides), config.encoder_features),
        CriticEnsemble(config.critic_hidden_dims, config.num_critics, config.layer_norm, config.orthogonal_init),
        TanhGaussianPolicy(config.policy_hidden_dims, action_dim, config.layer_norm, config.orthogonal_init),
    )


def init_pixel_params(
    key: jax.Array, image_shape: tuple[int, ...], action_dim: int, config: AgentConfig
) -> tuple[dict, dict]:
    """(critic params {"encoder", "heads"}, actor params {"encoder": the same encoder, "heads"})."""
    networks = pixel_networks(config, action_dim)
    encoder_key, critic_key, actor_key = jax.random.split(key, 3)
    images = jnp.zeros((1,) + tuple(image_shape), jnp.uint8)
    encoder = networks.encoder.init(encoder_key, images)
    features = networks.encoder.apply(encoder, images)
    heads = networks.heads.init(critic_key, features, jnp.zeros((1, action_dim), jnp.float32))
    policy = networks.policy.init(actor_key, features)
    return {"encoder": encoder, "heads": heads}, {"encoder": encoder, "heads": policy}


def shifted_pair(key: jax.Array, observations: jax.Array, next_observations: jax.Array, pad: int):
    """Both image batches shifted, each image by its own random offset (DrQ augments s and s' apart)."""
    key_now, key_next = jax.random.split(key)
    return random_shift(key_now, observations, pad), random_shift(key_next, next_observations, pad)


def with_encoder_copy(actor: TrainState, critic_params: Mapping[str, Any]) -> TrainState:
    """The actor with its encoder copy set to the critic's encoder (after each gradient step)."""
    return actor.replace(params={**actor.params, "encoder": critic_params["encoder"]})
