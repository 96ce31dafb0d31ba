"""The jitted, scanned update: equivalence with single steps, determinism, gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calql.agent.state import create_agent
from calql.agent.update import _critic_loss, _td_target, update, update_step
from calql.config import AgentConfig
from calql.data.transitions import Transitions

TINY = AgentConfig(critic_hidden_dims=(16, 16), policy_hidden_dims=(16, 16), num_sampled_actions=4)
OBS, ACT = 3, 2


def random_batches(seed: int, num_batches: int, batch_size: int = 8) -> Transitions:
    rng = np.random.default_rng(seed)
    shape = (num_batches, batch_size)
    return Transitions(
        observations=rng.normal(size=shape + (OBS,)).astype(np.float32),
        actions=rng.uniform(-0.9, 0.9, shape + (ACT,)).astype(np.float32),
        rewards=rng.normal(size=shape).astype(np.float32),
        next_observations=rng.normal(size=shape + (OBS,)).astype(np.float32),
        dones=(rng.random(shape) < 0.2).astype(np.float32),
        reference=rng.normal(size=shape).astype(np.float32),
    )


def first(batches: Transitions, i: int) -> Transitions:
    return jax.tree.map(lambda x: x[i], batches)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        dataclasses.replace(
            TINY, max_target_backup=False, backup_entropy=True, cql_lagrange=False, cql_importance_sample=False
        ),
    ],
)
def test_scanned_update_equals_a_python_loop_of_single_steps(config):
    state = create_agent(jax.random.PRNGKey(0), OBS, ACT, config)
    batches = random_batches(0, 5)
    scanned, _ = update(state, batches, np.ones(5, bool))
    looped = state
    step = jax.jit(update_step)
    for i in range(5):
        looped, _ = step(looped, first(batches, i))
    assert_trees_close(scanned, looped)


def test_inactive_steps_leave_the_state_untouched():
    state = create_agent(jax.random.PRNGKey(0), OBS, ACT, TINY)
    batches = random_batches(1, 4)
    padded, padded_metrics = update(state, batches, np.array([True, True, False, False]))
    short, short_metrics = update(state, jax.tree.map(lambda x: x[:2], batches), np.ones(2, bool))
    assert_trees_close(padded, short)
    assert_trees_close(padded_metrics, short_metrics)


def test_same_seed_gives_bit_identical_parameters():
    def run(seed):
        state = create_agent(jax.random.PRNGKey(seed), OBS, ACT, TINY)
        return update(state, random_batches(2, 3), np.ones(3, bool))[0]

    a, b, c = run(7), run(7), run(8)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(a.actor.params)[0]), np.asarray(jax.tree.leaves(c.actor.params)[0])
    )


def _nonzero(tree) -> list[bool]:
    return [bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(tree)]


def test_every_parameter_receives_a_gradient():
    state = create_agent(jax.random.PRNGKey(0), OBS, ACT, TINY)
    batch = first(random_batches(3, 1), 0)
    target = _td_target(state, batch, jax.random.PRNGKey(1))
    keys = list(jax.random.split(jax.random.PRNGKey(2), 3))
    critic_grads = jax.grad(lambda p: _critic_loss(p, state, batch, target, keys)[0])(state.critic.params)
    assert all(_nonzero(critic_grads))
    new_state, _ = update(state, random_batches(3, 1), np.ones(1, bool))
    for old, new in [
        (state.actor.params, new_state.actor.params),
        (state.critic.params, new_state.critic.params),
        (state.target_critic_params, new_state.target_critic_params),
        (state.log_temperature.params, new_state.log_temperature.params),
        (state.log_lagrange.params, new_state.log_lagrange.params),
    ]:
        assert all(_nonzero(jax.tree.map(jnp.subtract, old, new)))


def test_lagrange_multiplier_is_frozen_without_lagrange():
    state = create_agent(jax.random.PRNGKey(0), OBS, ACT, dataclasses.replace(TINY, cql_lagrange=False))
    new_state, _ = update(state, random_batches(4, 2), np.ones(2, bool))
    assert float(new_state.log_lagrange.params["value"]) == float(state.log_lagrange.params["value"])


def _critic_metrics(calibrate: bool, mc_return: float):
    state = create_agent(jax.random.PRNGKey(0), OBS, ACT, TINY, calibrate=calibrate)
    batch = first(random_batches(5, 1), 0)._replace(reference=np.full(8, mc_return, np.float32))
    keys = list(jax.random.split(jax.random.PRNGKey(2), 3))
    loss, (metrics, *_) = _critic_loss(state.critic.params, state, batch, jnp.zeros(8), keys)
    return float(loss), {k: float(v) for k, v in metrics.items()}


def test_calibration_only_touches_policy_action_q_values():
    cql_loss, cql = _critic_metrics(False, 100.0)
    calql_loss, calql = _critic_metrics(True, 100.0)
    assert calql["critic/q_policy"] == pytest.approx(100.0)  # every policy value lifted to G
    assert cql["critic/q_policy"] < 1.0
    for untouched in ("critic/q_data", "critic/q_random", "critic/td_loss"):
        assert calql[untouched] == cql[untouched]
    assert calql_loss > cql_loss
    assert calql["critic/bound_rate"] == cql["critic/bound_rate"] == 1.0


def test_calibration_is_a_no_op_when_the_reference_is_below_every_q():
    assert _critic_metrics(True, -1e6) == _critic_metrics(False, -1e6)


def _bandit(num: int = 512, seed: int = 0) -> Transitions:
    """One state, one-step episodes, r(a) = 1 - (a - 0.5)^2, behaviour a ~ N(0.5, 0.05): a
    near-optimal behaviour policy whose value V^mu = E[G] is about 1."""
    rng = np.random.default_rng(seed)
    actions = np.clip(rng.normal(0.5, 0.05, (num, 1)), -0.99, 0.99).astype(np.float32)
    rewards = (1.0 - (actions[:, 0] - 0.5) ** 2).astype(np.float32)
    obs = np.ones((num, 1), np.float32)
    return Transitions(obs, actions, rewards, obs, np.ones(num, np.float32), rewards.copy())


def _q_of_policy_after_training(calibrate: bool, data: Transitions) -> float:
    from calql.agent.acting import deterministic_action

    config = AgentConfig(
        critic_hidden_dims=(32, 32),
        policy_hidden_dims=(32, 32),
        num_sampled_actions=4,
        cql_alpha=20.0,
        cql_lagrange=False,
        critic_lr=1e-3,
        policy_lr=1e-3,
    )
    state = create_agent(jax.random.PRNGKey(0), 1, 1, config, calibrate=calibrate)
    rng = np.random.default_rng(0)
    for _ in range(6):
        indices = rng.integers(0, data.size, (50, 64))
        state, _ = update(state, jax.tree.map(lambda x, rows=indices: x[rows], data), np.ones(50, bool))
    obs = data.observations[:1]
    return float(state.critic.apply_fn(state.critic.params, obs, deterministic_action(state.actor, obs)).min())


def test_calibrated_q_stays_above_the_behaviour_value_while_conservative_cql_falls_below():
    """Paper section 5: with a strong CQL weight, CQL's Q(s, pi(s)) drops under V^mu; Cal-QL's
    bound keeps it at or above V^mu."""
    data = _bandit()
    behaviour_value = float(data.reference.mean())
    assert _q_of_policy_after_training(True, data) >= behaviour_value
    assert _q_of_policy_after_training(False, data) < behaviour_value - 0.1


def test_divergence_check_sees_a_non_finite_parameter(tmp_path):
    from calql.training.divergence import TrainingDiverged, check_finite

    class NoCheckpoints:
        def all_steps(self):
            return []

    config = AgentConfig(critic_hidden_dims=(8,), policy_hidden_dims=(8,))
    state = create_agent(jax.random.PRNGKey(0), OBS, ACT, config)
    check_finite(state, {"critic/td_loss": 1.0}, "offline gradient step 5", NoCheckpoints(), tmp_path)
    params = jax.tree_util.tree_map(lambda x: x.at[(0,) * x.ndim].set(jnp.inf), state.actor.params)
    broken = state.replace(actor=state.actor.replace(params=params))
    with pytest.raises(TrainingDiverged, match="at offline gradient step 5: the parameters are no longer finite; no"):
        check_finite(broken, {"critic/td_loss": 1.0}, "offline gradient step 5", NoCheckpoints(), tmp_path)
