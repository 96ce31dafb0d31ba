"""The agent: one pytree holding every network, optimiser state, target and RNG."""

import dataclasses
import functools
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from calql.agent.networks import CriticEnsemble, TanhGaussianPolicy, ValueNetwork
from calql.agent.pixels import init_pixel_params, pixel_networks
from calql.config import AgentConfig, Algo

ObservationShape = int | tuple[int, ...]
"""The agent's input: a vector's width, or an image's (H, W, C)."""

# docs/algorithm.md section 2: log alpha' starts at 1.0, so alpha' starts at e.
INIT_LOG_LAGRANGE = 1.0


class AgentState(struct.PyTreeNode):
    """Everything the update changes. `config` and `calibrate` are static (part of the
    compiled function's identity): calibrate=False is plain CQL."""

    actor: TrainState
    critic: TrainState
    target_critic_params: Any
    log_temperature: TrainState
    log_lagrange: TrainState
    rng: jax.Array
    config: AgentConfig = struct.field(pytree_node=False)
    calibrate: bool = struct.field(pytree_node=False)

    @property
    def action_dim(self) -> int:
        return self.actor.apply_fn.__self__.action_dim  # type: ignore[attr-defined]  # apply_fn is the policy's bound apply

    @property
    def target_entropy(self) -> float:
        """H* = -scale * A: SAC's heuristic -A at scale 1 (Cal-QL, CQL), RLPD's -A/2 at 0.5."""
        return -float(self.action_dim) * self.config.target_entropy_scale


class IQLAgentState(AgentState):
    """An IQL agent (docs/algorithm.md section 2.9): AgentState plus the state-value network V(s)
    and its Adam. A subclass, so that Cal-QL and CQL keep the pytree, and so the checkpoints, they
    had before IQL existed. IQL leaves the entropy temperature and the Lagrange multiplier as created."""

    value: TrainState


class RLPDAgentState(AgentState):
    """An RLPD agent (docs/algorithm.md section 2.10): AgentState's leaves exactly, its type selects
    RLPD's update in `update_step` (as IQLAgentState's selects IQL's), so Cal-QL and CQL keep their
    pytree, their compiled update and their checkpoints. The Lagrange multiplier stays as created."""


class PixelAgentState(AgentState):
    """A Cal-QL / CQL agent on image observations (docs/algorithm.md section 10): AgentState's leaves,
    the critic's params {"encoder", "heads"} with the convolutional encoder (calql.agent.pixels),
    the actor's {"encoder": a copy of it, "heads"}, the target critics heads only (DrQ-v2). Its
    type selects the pixel step in `update_step`."""

    @property
    def action_dim(self) -> int:
        return self.actor.apply_fn.__self__.policy.action_dim  # type: ignore[attr-defined]  # PixelNetworks.actor


@functools.cache
def adam(learning_rate: float) -> optax.GradientTransformation:
    """One optimiser object per learning rate: optax closures compare by identity and are part of
    the state's static structure, so sharing them lets every agent reuse one compiled update."""
    return optax.adam(learning_rate)


@functools.cache
def _cached(module_type, *fields):
    """One module object per configuration: `module.apply` is in the state's static structure and
    bound methods compare by their object's identity (see `adam`)."""
    return module_type(*fields)


def _scalar_state(value: float, learning_rate: float) -> TrainState:
    """A trainable scalar; params is a dict because TrainState needs a mapping."""
    return TrainState.create(apply_fn=None, params={"value": jnp.asarray(value, jnp.float32)}, tx=adam(learning_rate))


def create_agent(
    key: jax.Array, obs_dim: int, action_dim: int, config: AgentConfig, calibrate: bool = True
) -> AgentState:
    """Fresh networks (orthogonal init), Adam optimisers and targets equal to the critics."""
    actor_key, critic_key, rng = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    actions = jnp.zeros((1, action_dim), jnp.float32)
    policy = _cached(
        TanhGaussianPolicy, config.policy_hidden_dims, action_dim, config.layer_norm, config.orthogonal_init
    )
    critic = _cached(
        CriticEnsemble, config.critic_hidden_dims, config.num_critics, config.layer_norm, config.orthogonal_init
    )
    actor_params = policy.init(actor_key, obs)
    critic_params = critic.init(critic_key, obs, actions)
    return AgentState(
        actor=TrainState.create(apply_fn=policy.apply, params=actor_params, tx=adam(config.policy_lr)),
        critic=TrainState.create(apply_fn=critic.apply, params=critic_params, tx=adam(config.critic_lr)),
        target_critic_params=critic_params,
        log_temperature=_scalar_state(config.init_log_temperature, config.policy_lr),
        log_lagrange=_scalar_state(INIT_LOG_LAGRANGE, config.critic_lr),
        rng=rng,
        config=config,
        calibrate=calibrate,
    )


def create_iql_agent(key: jax.Array, obs_dim: int, action_dim: int, config: AgentConfig) -> IQLAgentState:
    """`create_agent`'s networks plus IQL's V(s) (critic widths, critic learning rate, as the IQL
    authors' value network), its key split from the agent's RNG."""
    agent = create_agent(key, obs_dim, action_dim, config, calibrate=False)
    rng, value_key = jax.random.split(agent.rng)
    network = _cached(ValueNetwork, config.critic_hidden_dims, config.layer_norm, config.orthogonal_init)
    params = network.init(value_key, jnp.zeros((1, obs_dim), jnp.float32))
    fields = {field.name: getattr(agent, field.name) for field in dataclasses.fields(agent)}
    value = TrainState.create(apply_fn=network.apply, params=params, tx=adam(config.critic_lr))
    return IQLAgentState(**{**fields, "rng": rng}, value=value)


def create_pixel_agent(
    key: jax.Array, image_shape: tuple[int, ...], action_dim: int, config: AgentConfig, calibrate: bool = True
) -> PixelAgentState:
    """`create_agent` on images: the encoder in front of the same critics and policy (calql.agent.pixels)."""
    networks = pixel_networks(config, action_dim)
    params_key, rng = jax.random.split(key)
    critic_params, actor_params = init_pixel_params(params_key, image_shape, action_dim, config)
    return PixelAgentState(
        actor=TrainState.create(apply_fn=networks.actor, params=actor_params, tx=adam(config.policy_lr)),
        critic=TrainState.create(apply_fn=networks.critic, params=critic_params, tx=adam(config.critic_lr)),
        target_critic_params={"heads": critic_params["heads"]},
        log_temperature=_scalar_state(config.init_log_temperature, config.policy_lr),
        log_lagrange=_scalar_state(INIT_LOG_LAGRANGE, config.critic_lr),
        rng=rng,
        config=config,
        calibrate=calibrate,
    )


def new_agent(
    algo: Algo, key: jax.Array, obs_dim: ObservationShape, action_dim: int, config: AgentConfig
) -> AgentState:
    """The fresh agent `--algo` trains (also the template a checkpoint of such a run restores into);
    `obs_dim` an image's (H, W, C) gives a pixel agent (Cal-QL and CQL only)."""
    if isinstance(obs_dim, tuple):
        if algo not in ("calql", "cql"):
            raise ValueError(f"--algo {algo} does not take image observations; use calql or cql")
        return create_pixel_agent(key, obs_dim, action_dim, config, calibrate=algo == "calql")
    if algo == "iql":
        return create_iql_agent(key, obs_dim, action_dim, config)
    if algo == "rlpd":
        agent = create_agent(key, obs_dim, action_dim, config, calibrate=False)
        return RLPDAgentState(**{field.name: getattr(agent, field.name) for field in dataclasses.fields(agent)})
    return create_agent(key, obs_dim, action_dim, config, calibrate=algo == "calql")
