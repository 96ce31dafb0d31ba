"""Pure loss functions of Cal-QL / CQL / SAC and IQL, one per equation of docs/algorithm.md section 2.

Shape names: E critics, B batch, K sampled actions per state, A action dimension.
"""

import jax
import jax.numpy as jnp


def bellman_target(
    rewards: jax.Array,
    dones: jax.Array,
    next_q: jax.Array,
    next_log_pi: jax.Array,
    discount: float,
    max_backup: bool,
    entropy_bonus: float | jax.Array = 0.0,
) -> jax.Array:
    """y = r + gamma (1 - d) V(s'), without gradient.

    next_q: (E, B, K) target-critic values of K actions sampled at s'; next_log_pi: (B, K).
    Max backup: the action with the largest min_j Q'_j(s', a'_k); otherwise the first sample.
    V = min_j Q'_j(s', a') - entropy_bonus * log pi(a'|s') (entropy_bonus = alpha when backing
    up entropy, 0 by default). Returns (B,).
    """
    min_q = next_q.min(axis=0)
    chosen = jnp.argmax(min_q, axis=-1, keepdims=True) if max_backup else jnp.zeros_like(min_q[:, :1], jnp.int32)
    value = jnp.take_along_axis(min_q, chosen, axis=-1)[:, 0]
    log_pi = jnp.take_along_axis(next_log_pi, chosen, axis=-1)[:, 0]
    return jax.lax.stop_gradient(rewards + discount * (1.0 - dones) * (value - entropy_bonus * log_pi))


def critic_subset(q: jax.Array, key: jax.Array, num: int) -> jax.Array:
    """The values of `num` of the E critics, drawn uniformly without replacement (REDQ's and RLPD's
    random subset of the target critics; its minimum is the target's): (E, ...) -> (num, ...)."""
    chosen = jax.random.choice(key, q.shape[0], (num,), replace=False)
    return q[chosen]


def td_loss(q_data: jax.Array, target: jax.Array) -> jax.Array:
    """Per-critic mean squared TD error: q_data (E, B), target (B,) -> (E,)."""
    return jnp.mean((q_data - target) ** 2, axis=-1)


def calibrate(q_policy: jax.Array, reference: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Cal-QL step: Q(s, a~pi) <- max(Q(s, a~pi), G(s)) (paper eq. 5.1).

    q_policy: (E, B, K) Q-values of policy-sampled actions; reference: (B,) reference values G
    (Monte-Carlo returns-to-go, or the learned behaviour value). Returns the bounded values and
    the bound rate (fraction of values that were below G).
    """
    floor = reference[None, :, None]
    bound_rate = jnp.mean(q_policy < floor)
    return jnp.maximum(q_policy, floor), bound_rate


def cql_logsumexp(
    q_random: jax.Array,
    q_data: jax.Array,
    q_policy: jax.Array,
    log_pi_policy: jax.Array,
    action_dim: int,
    importance_sample: bool,
    temperature: float,
) -> jax.Array:
    """Soft maximum of Q(s, .) over sampled actions: T * logsumexp(cat / T).

    All Q-values are at the state s. q_random: (E, B, K) for uniform actions; q_data: (E, B);
    q_policy: (E, B, 2K) for K actions sampled at s' and K at s, log_pi_policy: (B, 2K) their
    log-probs. Importance sampling divides each value by its proposal density (uniform 0.5^A,
    the policy's for the others) and leaves out Q(s, a). Returns (E, B).
    """
    if importance_sample:
        uniform_log_density = action_dim * jnp.log(0.5)
        cat = jnp.concatenate([q_random - uniform_log_density, q_policy - log_pi_policy], axis=-1)
    else:
        cat = jnp.concatenate([q_random, q_data[..., None], q_policy], axis=-1)
    return temperature * jax.nn.logsumexp(cat / temperature, axis=-1)


def cql_gap(ood: jax.Array, q_data: jax.Array, clip_min: float, clip_max: float) -> jax.Array:
    """Per-critic CQL gap: mean over the batch of clip(softmax Q - Q(s, a)). (E, B) -> (E,)."""
    return jnp.mean(jnp.clip(ood - q_data, clip_min, clip_max), axis=-1)


def cql_penalty(gap: jax.Array, alpha: float, lagrange_multiplier: jax.Array | None, target_gap: float) -> jax.Array:
    """Per-critic CQL loss: alpha * gap, or alpha' * alpha * (gap - target) with Lagrange."""
    if lagrange_multiplier is None:
        return alpha * gap
    return jax.lax.stop_gradient(lagrange_multiplier) * alpha * (gap - target_gap)


LAGRANGE_MULTIPLIER_MAX = 1e6


def lagrange_multiplier(log_alpha_prime: jax.Array) -> jax.Array:
    """alpha' = clip(exp(log alpha'), 0, 1e6)."""
    return jnp.clip(jnp.exp(log_alpha_prime), 0.0, LAGRANGE_MULTIPLIER_MAX)


def lagrange_loss(log_alpha_prime: jax.Array, gap: jax.Array, alpha: float, target_gap: float) -> jax.Array:
    """Multiplier loss -(mean over critics of alpha' alpha (gap - target)): alpha' grows while
    the gap exceeds its target and shrinks below it. gap: (E,), without gradient."""
    multiplier = lagrange_multiplier(log_alpha_prime)
    return -jnp.mean(multiplier * alpha * (jax.lax.stop_gradient(gap) - target_gap))


def actor_loss(log_pi: jax.Array, q_new: jax.Array, temperature: jax.Array) -> jax.Array:
    """SAC policy loss mean(alpha log pi(a~|s) - Q(s, a~)); log_pi, q_new: (B,). Q is min_j Q_j for
    Cal-QL / CQL, the ensemble mean for RLPD."""
    return jnp.mean(jax.lax.stop_gradient(temperature) * log_pi - q_new)


def temperature_loss(log_temperature: jax.Array, log_pi: jax.Array, target_entropy: float) -> jax.Array:
    """Entropy-temperature loss -log alpha * mean(log pi + H*), log_pi without gradient."""
    return -log_temperature * jnp.mean(jax.lax.stop_gradient(log_pi) + target_entropy)


# IQL (Kostrikov, Nair, Levine 2021, arXiv:2110.06169), docs/algorithm.md section 2.9.

AWR_MAX_WEIGHT = 100.0
"""Upper clip of the advantage weights (the IQL authors' `exp_a` clip)."""


def expectile_loss(difference: jax.Array, expectile: float) -> jax.Array:
    """IQL eq. (5): mean over the batch of |tau - 1(u < 0)| u^2 with u = Q(s, a) - V(s), (B,) -> ().
    tau > 0.5 weighs values above V more, so V tends to an upper expectile of Q over the data's actions."""
    weight = jnp.where(difference > 0, expectile, 1.0 - expectile)
    return jnp.mean(weight * difference**2)


def value_backup(rewards: jax.Array, dones: jax.Array, next_value: jax.Array, discount: float) -> jax.Array:
    """IQL eq. (6)'s target r + gamma (1 - d) V(s'), without gradient; all (B,)."""
    return jax.lax.stop_gradient(rewards + discount * (1.0 - dones) * next_value)


def awr_weights(q_data: jax.Array, value: jax.Array, temperature: float) -> jax.Array:
    """IQL eq. (7)'s weights exp(beta (Q(s, a) - V(s))), clipped at AWR_MAX_WEIGHT, without gradient; (B,)."""
    weights = jnp.minimum(jnp.exp(temperature * (q_data - value)), AWR_MAX_WEIGHT)
    return jax.lax.stop_gradient(weights)


def awr_loss(weights: jax.Array, log_pi_data: jax.Array) -> jax.Array:
    """Advantage-weighted regression: -mean(w log pi(a|s)) on dataset actions; (B,) -> ()."""
    return -jnp.mean(weights * log_pi_data)
