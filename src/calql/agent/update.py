"""The Cal-QL / CQL update: one gradient step, and many scanned in one compiled call.

All losses are computed from one parameter snapshot and all modules are updated together
(authors' order, docs/algorithm.md section 2); targets are soft-updated every step. An IQL agent
(one holding a value network) takes IQL's step instead (`calql.agent.iql`, section 2.9), in the
same scan, as does an RLPD agent (`calql.agent.rlpd`, section 2.10).
"""

from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import optax

from calql.agent import losses
from calql.agent.iql import iql_update_step
from calql.agent.networks import sample_tanh_gaussian
from calql.agent.pixels import pixel_networks, shifted_pair, with_encoder_copy
from calql.agent.rlpd import rlpd_update_step
from calql.agent.state import AgentState, IQLAgentState, PixelAgentState, RLPDAgentState
from calql.data.transitions import Transitions

Metrics = dict[str, jax.Array]
Encode = Callable[[Any, jax.Array], jax.Array]
"""(critic params, observations) -> the critics' and policy's input: the identity on vectors, the
convolutional encoder on images (trained by the critic loss through these params)."""


def _unencoded(critic_params, observations: jax.Array) -> jax.Array:
    return observations


def _sample_policy(
    state: AgentState, observations: jax.Array, key: jax.Array, num: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """`num` (default K) actions per state (B, num, A) and their log-probs (B, num), without gradient."""
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    actions, log_pis = sample_tanh_gaussian(key, mean, log_std, num or state.config.num_sampled_actions)
    return jax.lax.stop_gradient(actions), jax.lax.stop_gradient(log_pis)


def _q_at(critic, params, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """Q of (B, N, A) actions at (B, O) states -> (E, B, N)."""
    tiled = jnp.broadcast_to(observations[:, None, :], actions.shape[:2] + observations.shape[-1:])
    return critic(params, tiled, actions)


def _td_target(state: AgentState, batch: Transitions, key: jax.Array) -> jax.Array:
    """Bellman target (B,) from K (max backup) or 1 policy actions at s' and the target critics."""
    cfg = state.config
    num_actions = cfg.num_sampled_actions if cfg.max_target_backup else 1
    next_actions, next_log_pis = _sample_policy(state, batch.next_observations, key, num_actions)
    next_q = _q_at(state.critic.apply_fn, state.target_critic_params, batch.next_observations, next_actions)
    if cfg.num_min_qs:  # trace-time: with 0 (all critics) the computation and its keys are unchanged
        next_q = losses.critic_subset(next_q, jax.random.fold_in(key, 1), cfg.num_min_qs)
    entropy_bonus = jnp.exp(state.log_temperature.params["value"]) if cfg.backup_entropy else 0.0
    return losses.bellman_target(
        batch.rewards, batch.dones, next_q, next_log_pis, cfg.discount, cfg.max_target_backup, entropy_bonus
    )


def _critic_loss(
    critic_params, state: AgentState, batch: Transitions, target: jax.Array, keys, encode: Encode = _unencoded
) -> tuple[jax.Array, tuple[Metrics, jax.Array, jax.Array]]:
    """Sum over critics of TD loss + CQL penalty, with the Cal-QL step on policy actions; also
    returns the encoded observations (the policy's input)."""
    cfg = state.config
    batch = batch._replace(observations=encode(critic_params, batch.observations))
    batch_size, action_dim = batch.actions.shape
    k = cfg.num_sampled_actions
    random_actions = jax.random.uniform(keys[0], (batch_size, k, action_dim), minval=-1.0, maxval=1.0)
    # Actions sampled at s' are scored at s: an original-CQL quirk all implementations keep.
    next_actions, next_log_pis = _sample_policy(state, batch.next_observations, keys[1])
    current_actions, current_log_pis = _sample_policy(state, batch.observations, keys[2])
    # One critic call on all 1 + 3K actions at s: bigger matrix products run faster.
    all_actions = jnp.concatenate([batch.actions[:, None], random_actions, next_actions, current_actions], axis=1)
    q_all = _q_at(state.critic.apply_fn, critic_params, batch.observations, all_actions)
    q_data, q_random, q_policy = q_all[..., 0], q_all[..., 1 : 1 + k], q_all[..., 1 + k :]

    bounded, bound_rate = losses.calibrate(q_policy, batch.reference)
    if state.calibrate:
        q_policy = bounded
    log_pi_policy = jnp.concatenate([next_log_pis, current_log_pis], axis=-1)
    ood = losses.cql_logsumexp(
        q_random, q_data, q_policy, log_pi_policy, action_dim, cfg.cql_importance_sample, cfg.cql_temperature
    )
    gap = losses.cql_gap(ood, q_data, cfg.cql_clip_diff_min, cfg.cql_clip_diff_max)
    multiplier = losses.lagrange_multiplier(state.log_lagrange.params["value"]) if cfg.cql_lagrange else None
    penalty = losses.cql_penalty(gap, cfg.cql_alpha, multiplier, cfg.cql_target_action_gap)
    td = losses.td_loss(q_data, target)
    metrics = {
        "critic/td_loss": td.mean(),
        "critic/cql_gap": gap.mean(),
        "critic/cql_penalty": penalty.mean(),
        "critic/q_data": q_data.mean(),
        "critic/q_random": q_random.mean(),
        "critic/q_policy": q_policy.mean(),
        "critic/mc_return": batch.reference.mean(),  # the mean reference G (key kept for old run directories)
        "critic/bound_rate": bound_rate,
        "critic/target": target.mean(),
    }
    return jnp.sum(td + penalty), (metrics, jax.lax.stop_gradient(gap), batch.observations)


def _actor_loss(actor_params, state: AgentState, observations: jax.Array, key: jax.Array):
    """SAC actor loss with reparameterised actions; also returns log pi for the temperature."""
    mean, log_std = state.actor.apply_fn(actor_params, observations)
    actions, log_pis = sample_tanh_gaussian(key, mean, log_std)
    q_new = state.critic.apply_fn(jax.lax.stop_gradient(state.critic.params), observations, actions).min(axis=0)
    temperature = jnp.exp(state.log_temperature.params["value"])
    return losses.actor_loss(log_pis, q_new, temperature), log_pis


def update_step(state: AgentState, batch: Transitions) -> tuple[AgentState, Metrics]:
    """One gradient step of every module from the same parameter snapshot (IQL, RLPD: their own step)."""
    if isinstance(state, IQLAgentState):  # the pytree's type is part of the compiled function's identity
        return iql_update_step(state, batch)
    if isinstance(state, RLPDAgentState):
        return rlpd_update_step(state, batch)
    if isinstance(state, PixelAgentState):
        return pixel_update_step(state, batch)
    return _calql_step(state, batch)


def _calql_step(state: AgentState, batch: Transitions, encode: Encode = _unencoded) -> tuple[AgentState, Metrics]:
    """Cal-QL / CQL's step on observations the critic loss passes through `encode` (the critics'
    parameters' encoder, if any); the targets keep the parts of the critics they hold."""
    cfg = state.config
    rng, target_key, actor_key, *cql_keys = jax.random.split(state.rng, 6)
    target = _td_target(state, batch, target_key)
    (critic_loss, (critic_metrics, gap, features)), critic_grads = jax.value_and_grad(_critic_loss, has_aux=True)(
        state.critic.params, state, batch, target, cql_keys, encode
    )
    (actor_loss, log_pis), actor_grads = jax.value_and_grad(_actor_loss, has_aux=True)(
        state.actor.params, state, jax.lax.stop_gradient(features), actor_key
    )
    temperature_loss, temperature_grad = jax.value_and_grad(
        lambda p: losses.temperature_loss(p["value"], log_pis, state.target_entropy)
    )(state.log_temperature.params)
    lagrange_loss, lagrange_grad = jax.value_and_grad(
        lambda p: losses.lagrange_loss(p["value"], gap, cfg.cql_alpha, cfg.cql_target_action_gap)
    )(state.log_lagrange.params)
    critic = state.critic.apply_gradients(grads=critic_grads)
    new_state = state.replace(
        actor=state.actor.apply_gradients(grads=actor_grads),
        critic=critic,
        target_critic_params=optax.incremental_update(
            {part: critic.params[part] for part in state.target_critic_params}, state.target_critic_params, cfg.tau
        ),
        log_temperature=state.log_temperature.apply_gradients(grads=temperature_grad),
        log_lagrange=state.log_lagrange.apply_gradients(grads=lagrange_grad)
        if cfg.cql_lagrange
        else state.log_lagrange,
        rng=rng,
    )
    metrics = {
        **critic_metrics,
        "critic/loss": critic_loss,
        "actor/loss": actor_loss,
        "actor/entropy": -log_pis.mean(),
        "actor/temperature": jnp.exp(state.log_temperature.params["value"]),
        "actor/temperature_loss": temperature_loss,
    }
    if cfg.cql_lagrange:
        metrics["critic/cql_multiplier"] = losses.lagrange_multiplier(state.log_lagrange.params["value"])
        metrics["critic/lagrange_loss"] = lagrange_loss
    return new_state, metrics


def pixel_update_step(state: PixelAgentState, batch: Transitions) -> tuple[AgentState, Metrics]:
    """Cal-QL / CQL's step on images (docs/algorithm.md section 10): s and s' randomly shifted
    (--agent.augment), s encoded inside the critic loss (so the encoder learns from it), s' encoded
    once without gradient for the policy and the target critics; the same losses on the features.
    Then the actor's encoder copy is refreshed."""
    cfg = state.config
    networks = pixel_networks(cfg, state.action_dim)
    shift_key, rng = jax.random.split(state.rng)
    observations, next_observations = batch.observations, batch.next_observations
    if cfg.augment:
        observations, next_observations = shifted_pair(shift_key, observations, next_observations, cfg.shift_pad)
    next_features = jax.lax.stop_gradient(networks.encode(state.critic.params["encoder"], next_observations))
    features_view = state.replace(
        actor=state.actor.replace(apply_fn=networks.policy_heads),
        critic=state.critic.replace(apply_fn=networks.critic_heads),
        rng=rng,
    )
    new_view, metrics = _calql_step(
        features_view,
        batch._replace(observations=observations, next_observations=next_features),
        lambda params, images: networks.encode(params["encoder"], images),
    )
    actor = with_encoder_copy(new_view.actor.replace(apply_fn=networks.actor), new_view.critic.params)
    return new_view.replace(actor=actor, critic=new_view.critic.replace(apply_fn=networks.critic)), metrics


def _skip_step(state: AgentState, batch: Transitions) -> tuple[AgentState, Metrics]:
    shapes = jax.eval_shape(update_step, state, batch)[1]
    return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


Agent = TypeVar("Agent", bound=AgentState)


def _selected_step(state: Agent, inputs: tuple[Transitions, jax.Array]) -> tuple[Agent, Metrics]:
    """`update_step` without a conditional: its new state and metrics where the step is active, the
    old state and zero metrics where it is padding."""
    batch, is_active = inputs
    new_state, metrics = update_step(state, batch)
    kept = jax.tree.map(lambda new, old: jnp.where(is_active, new, old), new_state, state)
    return kept, jax.tree.map(lambda value: jnp.where(is_active, value, jnp.zeros_like(value)), metrics)


def scan_updates(state: AgentState, batches: Transitions, active: jax.Array) -> tuple[AgentState, Metrics]:
    """Scan `update_step` over the leading (update-to-data) axis of `batches`.

    active: (U,) bool; steps marked False leave the state untouched (padding, so that one
    compiled shape serves any number of updates). Returns the mean metrics of active steps.
    """

    def body(carry: AgentState, inputs):
        batch, is_active = inputs
        return jax.lax.cond(is_active, update_step, _skip_step, carry, batch)

    if isinstance(state, PixelAgentState):
        # XLA's CPU backend runs convolutions inside nested computations (a while loop's body, a
        # conditional's branches) 3-4x slower than at the top level (benchmarks/pixel_update.py
        # prints both): pixel steps are unrolled, and every step is computed, an inactive one's
        # result dropped by a select. The price is compile time, which grows with U
        # (--updates-per-call; the vision preset keeps it small).
        state, metrics = jax.lax.scan(_selected_step, state, (batches, active), unroll=True)
    else:
        state, metrics = jax.lax.scan(body, state, (batches, active))
    weights = active.astype(jnp.float32)
    count = jnp.maximum(weights.sum(), 1.0)
    return state, jax.tree.map(lambda m: jnp.tensordot(weights, m, axes=1) / count, metrics)


update = jax.jit(scan_updates)
"""The compiled update of one agent: (state, batches (U, B, ...), active (U,)) -> (state, metrics)."""


@jax.jit
def update_seeds(states: list[AgentState], batches: Transitions, active: jax.Array) -> tuple[list[AgentState], Metrics]:
    """S independent agents in one compiled, vmapped call: batches (S, U, B, ...), active (S, U).

    Takes and returns a list of per-seed states, stacking and splitting inside the compiled
    function so the host dispatches one call. Metrics come back with a leading seed axis.
    """
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    stacked, metrics = jax.vmap(scan_updates)(stacked, batches, active)
    return [jax.tree.map(lambda leaf, i=i: leaf[i], stacked) for i in range(len(states))], metrics
