"""Jitted acting and diagnostics: stochastic actions for data collection, tanh(mean) for evaluation."""

import jax
import jax.numpy as jnp
from flax.training.train_state import TrainState

from calql.agent.networks import sample_tanh_gaussian
from calql.agent.state import AgentState
from calql.data.transitions import Transitions


@jax.jit
def sample_action(actor: TrainState, observation: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One action from pi(.|s) for exploration, and the next key (one dispatch per env step).
    observation (..., O) -> (..., A)."""
    action_key, next_key = jax.random.split(key)
    mean, log_std = actor.apply_fn(actor.params, observation)
    return sample_tanh_gaussian(action_key, mean, log_std)[0], next_key


@jax.jit
def deterministic_action(actor: TrainState, observation: jax.Array) -> jax.Array:
    """The evaluation action tanh(mean); observation (..., O) -> (..., A)."""
    mean, _ = actor.apply_fn(actor.params, observation)
    return jnp.tanh(mean)


@jax.jit
def calibration_stats(state: AgentState, batch: Transitions) -> dict[str, jax.Array]:
    """Mean learned Q(s, a) and Q(s, pi(s)) on a data batch against its mean Monte-Carlo return:
    a calibrated critic stays near or above the return; an over-conservative one falls below.
    The batch's `reference` must hold the true Monte-Carlo returns (the training run gathers its
    batch before a learned reference replaces them), whatever reference the bound uses."""
    critic = state.critic.apply_fn
    q_data = critic(state.critic.params, batch.observations, batch.actions).mean(axis=0)
    q_policy = critic(state.critic.params, batch.observations, deterministic_action(state.actor, batch.observations))
    return {
        "calibration/q_data": q_data.mean(),
        "calibration/q_policy": q_policy.min(axis=0).mean(),
        "calibration/mc_return": batch.reference.mean(),
        "calibration/q_below_return": jnp.mean(q_data < batch.reference),
    }
