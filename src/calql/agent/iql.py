"""IQL's gradient step (Kostrikov, Nair, Levine 2021, arXiv:2110.06169; docs/algorithm.md section 2.9).

In the order of the IQL authors' `learner.py` (and of the Cal-QL authors' IQL fork): V takes its
step first; the policy's weights and the critics' target then use the new V; the target critics
follow by Polyak averaging. Only dataset (or online buffer) actions are ever scored.
"""

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from calql.agent import losses
from calql.agent.networks import action_log_prob, sample_tanh_gaussian
from calql.agent.state import AgentState, IQLAgentState
from calql.data.transitions import Transitions

Metrics = dict[str, jax.Array]

DATA_ACTION_LIMIT = 0.99999
"""Actions are clipped to +-this before their log-prob (the offline data already are, by
data/replay.py; an online tanh sample can round to exactly +-1 in float32, where atanh is infinite)."""
FROZEN_UNDER_AWR = ("log_std_multiplier", "log_std_offset")
"""The policy's two shared log-std scalars keep their initial values under IQL (section 2.9)."""


def min_target_q(state: AgentState, batch: Transitions) -> jax.Array:
    """min_j Q'_j(s, a) of the target critics at the batch's own actions, without gradient: (B,).
    V's regression target and the Q of the advantage."""
    q = state.critic.apply_fn(state.target_critic_params, batch.observations, batch.actions)
    return jax.lax.stop_gradient(q.min(axis=0))


def critic_target(value: TrainState, batch: Transitions, discount: float) -> jax.Array:
    """r + gamma (1 - d) V(s') with `value` (the freshly updated V), without gradient: (B,)."""
    next_value = value.apply_fn(value.params, batch.next_observations)
    return losses.value_backup(batch.rewards, batch.dones, next_value, discount)


def _value_loss(value_params, value: TrainState, observations: jax.Array, target_q: jax.Array, expectile: float):
    """Expectile loss of V(s) against min_j Q'_j(s, a); also V(s) before the step."""
    value_now = value.apply_fn(value_params, observations)
    return losses.expectile_loss(target_q - value_now, expectile), value_now


def _critic_loss(critic_params, state: AgentState, batch: Transitions, target: jax.Array):
    """Sum over critics of the mean squared error to the V-based target; also (per-critic TD, Q(s, a))."""
    q_data = state.critic.apply_fn(critic_params, batch.observations, batch.actions)
    td = losses.td_loss(q_data, target)
    return jnp.sum(td), (td, q_data)


def _actor_loss(actor_params, state: AgentState, observations: jax.Array, actions: jax.Array, weights: jax.Array):
    mean, log_std = state.actor.apply_fn(actor_params, observations)
    log_pi = action_log_prob(mean, log_std, jnp.clip(actions, -DATA_ACTION_LIMIT, DATA_ACTION_LIMIT))
    return losses.awr_loss(weights, log_pi), log_pi


def _without_frozen(grads):
    """The policy's gradient with zeros for FROZEN_UNDER_AWR, so Adam leaves those two unchanged."""
    params = grads["params"]
    return {**grads, "params": {**params, **{name: jnp.zeros_like(params[name]) for name in FROZEN_UNDER_AWR}}}


def _entropy_estimate(state: AgentState, observations: jax.Array, key: jax.Array) -> jax.Array:
    """-log pi(a~|s) of one sample per state, the same diagnostic as the SAC actor's."""
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    return -sample_tanh_gaussian(key, mean, log_std)[1].mean()


def iql_update_step(state: IQLAgentState, batch: Transitions) -> tuple[IQLAgentState, Metrics]:
    """One IQL step of V, the policy and the critics, then the targets."""
    cfg, value = state.config, state.value
    rng, entropy_key = jax.random.split(state.rng)
    target_q = min_target_q(state, batch)
    (value_loss, value_before), value_grads = jax.value_and_grad(_value_loss, has_aux=True)(
        value.params, value, batch.observations, target_q, cfg.iql_expectile
    )
    value = value.apply_gradients(grads=value_grads)
    new_v = value.apply_fn(value.params, batch.observations)
    weights = losses.awr_weights(target_q, new_v, cfg.iql_temperature)
    (actor_loss, log_pi), actor_grads = jax.value_and_grad(_actor_loss, has_aux=True)(
        state.actor.params, state, batch.observations, batch.actions, weights
    )
    target = critic_target(value, batch, cfg.discount)
    (critic_loss, (td, q_data)), critic_grads = jax.value_and_grad(_critic_loss, has_aux=True)(
        state.critic.params, state, batch, target
    )
    critic = state.critic.apply_gradients(grads=critic_grads)
    new_state = state.replace(
        actor=state.actor.apply_gradients(grads=_without_frozen(actor_grads)),
        critic=critic,
        target_critic_params=optax.incremental_update(critic.params, state.target_critic_params, cfg.tau),
        value=value,
        rng=rng,
    )
    metrics = {
        "critic/td_loss": td.mean(),
        "critic/loss": critic_loss,
        "critic/q_data": q_data.mean(),
        "critic/target": target.mean(),
        "value/loss": value_loss,
        "value/v": value_before.mean(),
        "actor/loss": actor_loss,
        "actor/advantage": jnp.mean(target_q - new_v),
        "actor/weight": weights.mean(),
        "actor/weight_clip_rate": jnp.mean(weights >= losses.AWR_MAX_WEIGHT),
        "actor/log_pi_data": log_pi.mean(),
        "actor/entropy": _entropy_estimate(state, batch.observations, entropy_key),
    }
    return new_state, metrics
