"""Networks: ReLU MLPs with orthogonal init, a critic ensemble, a state-value network, a tanh-Gaussian policy.

docs/algorithm.md section 3: orthogonal init with gain sqrt(2) on hidden layers and 1e-2 on
the output layer, zero biases, optional LayerNorm; log_std = m * raw + o with two learnable
scalars (m starts at 1, o at -1, as the authors'), clipped to [-20, 2].
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LOG_STD_MULTIPLIER_INIT, LOG_STD_OFFSET_INIT = 1.0, -1.0
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class MLP(nn.Module):
    """Hidden ReLU layers (optionally LayerNorm'ed), then a linear output layer."""

    hidden_dims: Sequence[int]
    out_dim: int
    layer_norm: bool = False
    orthogonal_init: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        hidden_init = (
            nn.initializers.orthogonal(np.sqrt(2.0)) if self.orthogonal_init else nn.linear.default_kernel_init
        )
        out_init = nn.initializers.orthogonal(1e-2) if self.orthogonal_init else nn.linear.default_kernel_init
        for width in self.hidden_dims:
            x = nn.Dense(width, kernel_init=hidden_init, bias_init=nn.initializers.zeros)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return nn.Dense(self.out_dim, kernel_init=out_init, bias_init=nn.initializers.zeros)(x)


class Critic(nn.Module):
    """Q(s, a). obs: (..., O), actions: (..., A) with matching leading dims -> (...)."""

    hidden_dims: Sequence[int]
    layer_norm: bool = False
    orthogonal_init: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, actions], axis=-1)
        return MLP(self.hidden_dims, 1, self.layer_norm, self.orthogonal_init)(x)[..., 0]


class CriticEnsemble(nn.Module):
    """`num_critics` independent critics in one module: output (E, ...)."""

    hidden_dims: Sequence[int]
    num_critics: int = 2
    layer_norm: bool = False
    orthogonal_init: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        return ensemble(self.hidden_dims, self.layer_norm, self.orthogonal_init)(obs, actions)


class ValueNetwork(nn.Module):
    """V(s): obs (..., O) -> (...), the critics' MLP without the action input (the learned
    reference's value, and IQL's)."""

    hidden_dims: tuple[int, ...]
    layer_norm: bool = False
    orthogonal_init: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden_dims, 1, self.layer_norm, self.orthogonal_init)(obs)[..., 0]


class TanhGaussianPolicy(nn.Module):
    """pi(a|s): returns the Gaussian's mean and log_std before the tanh squashing.

    The network's raw log-std is scaled and shifted by two learnable scalars shared by every
    action dimension (parameters `log_std_multiplier` and `log_std_offset`) before the clip.
    """

    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False
    orthogonal_init: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_dims, 2 * self.action_dim, self.layer_norm, self.orthogonal_init)(obs)
        mean, raw_log_std = jnp.split(out, 2, axis=-1)
        multiplier = self.param("log_std_multiplier", nn.initializers.constant(LOG_STD_MULTIPLIER_INIT), ())
        offset = self.param("log_std_offset", nn.initializers.constant(LOG_STD_OFFSET_INIT), ())
        log_std = jnp.clip(multiplier * raw_log_std + offset, LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, pre_tanh: jax.Array) -> jax.Array:
    """log pi(tanh(u)) for u ~ N(mean, std); mean, log_std, pre_tanh: (..., A) -> (...).

    Change of variables: log p(a) = log N(u) - sum log(1 - tanh(u)^2), with the stable
    identity log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).
    """
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(gaussian - log_det, axis=-1)


def action_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a|s) of given actions in (-1, 1) (dataset actions): u = atanh(a). (..., A) -> (...)."""
    return tanh_gaussian_log_prob(mean, log_std, jnp.arctanh(actions))


def sample_tanh_gaussian(
    key: jax.Array, mean: jax.Array, log_std: jax.Array, num_samples: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised samples and their log-probs.

    mean, log_std: (B, A). With num_samples=K returns actions (B, K, A) and log-probs (B, K);
    with None, actions (B, A) and log-probs (B,).
    """
    if num_samples is not None:
        mean, log_std = mean[:, None, :], log_std[:, None, :]
        shape = mean.shape[:1] + (num_samples,) + mean.shape[2:]
    else:
        shape = mean.shape
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, shape, mean.dtype)
    return jnp.tanh(pre_tanh), tanh_gaussian_log_prob(mean, log_std, pre_tanh)
