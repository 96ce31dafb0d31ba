"""Monte-Carlo return-to-go rules (docs/algorithm.md section 4) against hand-worked cases."""

import numpy as np
import pytest

from calql.data.returns import ReturnRule, discounted_returns, mc_returns, trajectory_ends, transform_rewards
from calql.envs.tasks import get_task


def _loop_returns(rewards, ends, discount):
    out, following = np.zeros(len(rewards)), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        following = rewards[t] + (0.0 if ends[t] else discount * following)
        out[t] = following
    return out


def test_terminal_cuts_the_return():
    terminals = np.array([0, 1, 0, 0])
    ends = trajectory_ends(terminals, np.zeros(4))
    g = mc_returns(np.array([1.0, 2.0, 3.0, 4.0]), ends, terminals, ReturnRule(0.5))
    np.testing.assert_allclose(g, [1 + 0.5 * 2, 2, 3 + 0.5 * 4, 4])


def test_time_out_ends_the_trajectory_without_bootstrap():
    ends = trajectory_ends(np.zeros(3), np.array([0, 1, 0]))
    g = mc_returns(np.array([1.0, 1.0, 1.0]), ends, np.zeros(3), ReturnRule(0.9))
    np.testing.assert_allclose(g, [1.9, 1.0, 1.0])


def test_observation_discontinuity_starts_a_new_trajectory():
    obs = np.array([[0.0], [1.0], [5.0], [6.0]])
    next_obs = np.array([[1.0], [2.0], [6.0], [7.0]])  # next_obs[1] != obs[2]
    ends = trajectory_ends(np.zeros(4), np.zeros(4), obs, next_obs)
    np.testing.assert_array_equal(ends, [False, True, False, True])
    g = mc_returns(np.array([1.0, 1.0, 1.0, 1.0]), ends, np.zeros(4), ReturnRule(0.5))
    np.testing.assert_allclose(g, [1.5, 1.0, 1.5, 1.0])


def test_all_failure_rule_checks_every_reward_not_only_the_last():
    # Trajectory A: all failures -> r_neg / (1 - gamma). Trajectory B ends in failure but succeeded
    # once earlier: ordinary discounted return.
    rewards = np.array([-5.0, -5.0, -5.0, 5.0, -5.0])
    ends = np.array([False, False, True, False, True])
    g = mc_returns(rewards, ends, np.zeros(5), ReturnRule(0.9, sparse_failure_reward=-5.0))
    np.testing.assert_allclose(g[:3], -5.0 / 0.1)
    np.testing.assert_allclose(g[3:], [5.0 + 0.9 * -5.0, -5.0], rtol=1e-6)


def test_reward_transform_comes_before_the_failure_rule():
    """Raw sparse {0, 1} -> {-5, 5}: an all-zero raw trajectory is an all-failure one only after
    the transform (its raw return would be 0, not -500)."""
    raw = np.array([0.0, 0.0, 0.0])
    rewards = transform_rewards(raw, 10.0, -5.0)
    ends = trajectory_ends(np.zeros(3), np.array([0, 0, 1]))
    g = mc_returns(rewards, ends, np.zeros(3), ReturnRule(0.99, sparse_failure_reward=-5.0))
    np.testing.assert_allclose(g, -500.0, rtol=1e-6)


def test_no_failure_rule_for_dense_tasks():
    g = mc_returns(np.array([-5.0, -5.0]), np.array([False, True]), np.zeros(2), ReturnRule(0.5))
    np.testing.assert_allclose(g, [-7.5, -5.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_returns_equal_a_python_loop(seed):
    rng = np.random.default_rng(seed)
    n = 5_000
    rewards = rng.normal(size=n)
    ends = rng.random(n) < 0.01
    ends[-1] = True
    np.testing.assert_allclose(discounted_returns(rewards, ends, 0.99), _loop_returns(rewards, ends, 0.99), rtol=1e-9)


def test_last_transition_always_ends_a_trajectory():
    assert trajectory_ends(np.zeros(3), np.zeros(3))[-1]


def test_kitchen_tail_after_a_time_out_continues_the_last_reward_forever():
    """FrankaKitchen (authors' kitchen commit): no reward transform, no all-failure rule, and
    G_last = r_last + gamma (1 - d_last) r_last / (1 - gamma). Hand-worked, gamma 0.5:
    trajectory A ends in a time-out with r_last 2: G = [0 + 0.5*(1 + 0.5*(2 + 0.5*2/0.5)), 1 + 0.5*4, 2 + 2];
    trajectory B ends terminal (all four stages): no tail, G = [3 + 0.5*4, 4];
    trajectory C never solves a stage and times out: G = 0 (not r_fail / (1 - gamma) = 0 either way,
    but no all-failure rule is applied)."""
    task = get_task("kitchen-mixed")
    assert (task.reward_scale, task.reward_bias, task.sparse_failure_reward) == (1.0, 0.0, None)
    raw = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0])
    terminals = np.array([0, 0, 0, 0, 1, 0, 0], bool)
    timeouts = np.array([0, 0, 1, 0, 0, 0, 1], bool)
    rewards = transform_rewards(raw, task.reward_scale, task.reward_bias)
    g = mc_returns(rewards, trajectory_ends(terminals, timeouts), terminals, task.return_rule(0.5))
    a_last = 2 + 0.5 * 2 / 0.5
    expected = [0 + 0.5 * (1 + 0.5 * a_last), 1 + 0.5 * a_last, a_last, 3 + 0.5 * 4, 4, 0, 0]
    np.testing.assert_allclose(g, expected, rtol=1e-6)


def test_kitchen_tail_of_a_dense_reward_that_stays_is_its_infinite_horizon_value():
    """A time-out trajectory whose reward stays at 1 has G_t = 1 / (1 - gamma) at every step."""
    ends = np.array([False, False, True])
    g = mc_returns(np.ones(3), ends, np.zeros(3, bool), ReturnRule(0.9, infinite_tail=True))
    np.testing.assert_allclose(g, 10.0, rtol=1e-6)


def test_sparse_tasks_keep_no_tail():
    for name in ("pointmaze-umaze", "antmaze-umaze", "pen-binary", "cube-single"):
        assert not get_task(name).return_rule(0.99).infinite_tail
