"""RLPD's gradient step (Ball, Smith, Kostrikov, Levine 2023, arXiv:2302.02948; docs/algorithm.md
section 2.10): SAC with a LayerNorm critic ensemble, a target that takes the minimum over a random
subset of the target critics and backs up entropy, no CQL term, and an actor that maximises the
ensemble's mean. As Cal-QL's update, every loss reads one parameter snapshot; the critics step every
time, the policy and the temperature every `policy_every` steps (RLPD: once per environment step);
the targets follow by Polyak averaging.
"""

import jax
import jax.numpy as jnp
import optax

from calql.agent import losses
from calql.agent.networks import sample_tanh_gaussian
from calql.agent.state import AgentState, RLPDAgentState
from calql.data.transitions import Transitions

Metrics = dict[str, jax.Array]


def rlpd_target(state: AgentState, batch: Transitions, key: jax.Array) -> jax.Array:
    """y = r + gamma (1 - d) (min over --agent.num-min-qs random target critics of Q'(s', a')
    - alpha log pi(a'|s')) with one a' ~ pi(.|s'), without gradient: (B,). Entropy is backed up with
    --agent.backup-entropy (RLPD's default); num-min-qs 0 takes the minimum over all critics."""
    cfg = state.config
    action_key, subset_key = jax.random.split(key)
    mean, log_std = state.actor.apply_fn(state.actor.params, batch.next_observations)
    next_actions, next_log_pi = sample_tanh_gaussian(action_key, mean, log_std, 1)  # (B, 1, A), (B, 1)
    next_q = state.critic.apply_fn(state.target_critic_params, batch.next_observations[:, None], next_actions)
    if cfg.num_min_qs:
        next_q = losses.critic_subset(next_q, subset_key, cfg.num_min_qs)
    temperature = jnp.exp(state.log_temperature.params["value"]) if cfg.backup_entropy else 0.0
    return losses.bellman_target(batch.rewards, batch.dones, next_q, next_log_pi, cfg.discount, False, temperature)


def _critic_loss(critic_params, state: AgentState, batch: Transitions, target: jax.Array):
    """Sum over the E critics of the TD loss, nothing else (no CQL term); also (per-critic TD, Q(s, a))."""
    q_data = state.critic.apply_fn(critic_params, batch.observations, batch.actions)
    td = losses.td_loss(q_data, target)
    return jnp.sum(td), (td, q_data)


def _actor_loss(actor_params, state: AgentState, observations: jax.Array, key: jax.Array):
    """SAC's actor loss against the mean of the ensemble (RLPD's `qs.mean(axis=0)`); also log pi."""
    mean, log_std = state.actor.apply_fn(actor_params, observations)
    actions, log_pis = sample_tanh_gaussian(key, mean, log_std)
    q_new = state.critic.apply_fn(jax.lax.stop_gradient(state.critic.params), observations, actions).mean(axis=0)
    temperature = jnp.exp(state.log_temperature.params["value"])
    return losses.actor_loss(log_pis, q_new, temperature), log_pis


def rlpd_update_step(state: RLPDAgentState, batch: Transitions) -> tuple[RLPDAgentState, Metrics]:
    """One RLPD step of the critics (and, every --agent.policy-every steps, of the policy and the
    temperature) from one snapshot, then the targets."""
    cfg = state.config
    rng, target_key, actor_key = jax.random.split(state.rng, 3)
    target = rlpd_target(state, batch, target_key)
    (critic_loss, (td, q_data)), critic_grads = jax.value_and_grad(_critic_loss, has_aux=True)(
        state.critic.params, state, batch, target
    )
    # RLPD's policy and temperature step once per environment step, after its UTD critic steps; on
    # the other steps the actor's loss is still evaluated (its metrics) but not differentiated.
    policy_due = (state.critic.step + 1) % cfg.policy_every == 0
    actor_inputs = (state.actor.params, state, batch.observations, actor_key)
    (actor_loss, log_pis), actor_grads = jax.lax.cond(
        policy_due,
        lambda: jax.value_and_grad(_actor_loss, has_aux=True)(*actor_inputs),
        lambda: (_actor_loss(*actor_inputs), jax.tree.map(jnp.zeros_like, state.actor.params)),
    )
    temperature_loss, temperature_grad = jax.value_and_grad(
        lambda p: losses.temperature_loss(p["value"], log_pis, state.target_entropy)
    )(state.log_temperature.params)
    critic = state.critic.apply_gradients(grads=critic_grads)
    actor, log_temperature = jax.lax.cond(
        policy_due,
        lambda: (
            state.actor.apply_gradients(grads=actor_grads),
            state.log_temperature.apply_gradients(grads=temperature_grad),
        ),
        lambda: (state.actor, state.log_temperature),
    )
    new_state = state.replace(
        actor=actor,
        critic=critic,
        target_critic_params=optax.incremental_update(critic.params, state.target_critic_params, cfg.tau),
        log_temperature=log_temperature,
        rng=rng,
    )
    metrics = {
        "critic/td_loss": td.mean(),
        "critic/loss": critic_loss,
        "critic/q_data": q_data.mean(),
        "critic/q_std": q_data.std(axis=0).mean(),
        "critic/target": target.mean(),
        "actor/loss": actor_loss,
        "actor/entropy": -log_pis.mean(),
        "actor/temperature": jnp.exp(state.log_temperature.params["value"]),
        "actor/temperature_loss": temperature_loss,
    }
    return new_state, metrics
