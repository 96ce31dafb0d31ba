"""Loss functions against hand-computed values (docs/algorithm.md section 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calql.agent import losses


def test_calibrate_is_elementwise_max_with_bound_rate():
    q = jnp.array([[[1.0, -3.0], [0.5, 4.0]]])  # (E=1, B=2, K=2)
    g = jnp.array([0.0, 2.0])
    bounded, rate = losses.calibrate(q, g)
    np.testing.assert_array_equal(bounded, [[[1.0, 0.0], [2.0, 4.0]]])
    assert float(rate) == pytest.approx(2 / 4)


def test_calibrate_gradient_is_zero_where_the_bound_is_active():
    q = jnp.array([[[1.0, -3.0]]])
    grad = jax.grad(lambda q: losses.calibrate(q, jnp.array([0.0]))[0].sum())(q)
    np.testing.assert_array_equal(grad, [[[1.0, 0.0]]])


def test_bellman_target_max_backup_takes_max_over_actions_of_min_over_critics():
    next_q = jnp.array([[[1.0, 5.0, 2.0]], [[3.0, 4.0, 0.0]]])  # (E=2, B=1, K=3): min = [1, 4, 0]
    y = losses.bellman_target(jnp.array([1.0]), jnp.array([0.0]), next_q, jnp.zeros((1, 3)), 0.9, True)
    assert float(y[0]) == pytest.approx(1.0 + 0.9 * 4.0)
    done = losses.bellman_target(jnp.array([1.0]), jnp.array([1.0]), next_q, jnp.zeros((1, 3)), 0.9, True)
    assert float(done[0]) == pytest.approx(1.0)


def test_bellman_target_without_max_backup_uses_one_sample_and_optional_entropy():
    next_q = jnp.array([[[1.0, 5.0]], [[3.0, 4.0]]])  # min over critics of sample 0 = 1
    log_pi = jnp.array([[-2.0, 0.0]])
    plain = losses.bellman_target(jnp.array([0.5]), jnp.array([0.0]), next_q, log_pi, 0.9, False)
    assert float(plain[0]) == pytest.approx(0.5 + 0.9 * 1.0)
    entropy = losses.bellman_target(jnp.array([0.5]), jnp.array([0.0]), next_q, log_pi, 0.9, False, 0.1)
    assert float(entropy[0]) == pytest.approx(0.5 + 0.9 * (1.0 - 0.1 * -2.0))


def test_bellman_target_max_backup_with_entropy_uses_the_chosen_actions_log_prob():
    next_q = jnp.array([[[1.0, 5.0, 2.0]], [[3.0, 4.0, 0.0]]])  # chosen: action 1 (min 4)
    log_pi = jnp.array([[-1.0, -3.0, -2.0]])
    y = losses.bellman_target(jnp.array([0.0]), jnp.array([0.0]), next_q, log_pi, 0.5, True, 0.1)
    assert float(y[0]) == pytest.approx(0.5 * (4.0 - 0.1 * -3.0))


def _hand_logsumexp(values):
    values = np.asarray(values, np.float64)
    return np.log(np.exp(values).sum())


def test_cql_logsumexp_with_importance_sampling_matches_hand_computation():
    q_random = jnp.array([[[0.2, -0.1]]])  # (E=1, B=1, K=2), A = 3
    q_policy = jnp.array([[[1.0, 0.5, 0.3, -0.4]]])  # next (2), current (2)
    log_pi = jnp.array([[-1.0, -0.5, -2.0, 0.1]])
    ood = losses.cql_logsumexp(q_random, jnp.array([[9.0]]), q_policy, log_pi, 3, True, 1.0)
    log_uniform = 3 * np.log(0.5)
    expected = _hand_logsumexp([0.2 - log_uniform, -0.1 - log_uniform, 2.0, 1.0, 2.3, -0.5])
    assert float(ood[0, 0]) == pytest.approx(expected, rel=1e-6)


def test_cql_logsumexp_without_importance_sampling_includes_data_q_and_temperature():
    q_random = jnp.array([[[0.2, -0.1]]])
    q_policy = jnp.array([[[1.0, 0.5]]])
    ood = losses.cql_logsumexp(q_random, jnp.array([[0.7]]), q_policy, jnp.zeros((1, 2)), 3, False, 2.0)
    expected = 2.0 * _hand_logsumexp(np.array([0.2, -0.1, 0.7, 1.0, 0.5]) / 2.0)
    assert float(ood[0, 0]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("calibrated", [False, True])
def test_cql_regulariser_value_with_bound_active_and_inactive(calibrated):
    """One state, one critic, K=1, A=1, no importance sampling.
    Q(s,a)=1, Q(s,u)=0, Q(s,a_next)=-2, Q(s,a_cur)=-1, G=0.5: the bound lifts both policy values to 0.5."""
    q_policy = jnp.array([[[-2.0, -1.0]]])
    g = jnp.array([0.5])
    if calibrated:
        q_policy, rate = losses.calibrate(q_policy, g)
        assert float(rate) == 1.0
    ood = losses.cql_logsumexp(jnp.array([[[0.0]]]), jnp.array([[1.0]]), q_policy, jnp.zeros((1, 2)), 1, False, 1.0)
    gap = losses.cql_gap(ood, jnp.array([[1.0]]), -np.inf, np.inf)
    policy_values = [0.5, 0.5] if calibrated else [-2.0, -1.0]
    expected_gap = _hand_logsumexp([0.0, 1.0, *policy_values]) - 1.0
    assert float(gap[0]) == pytest.approx(expected_gap, rel=1e-6)
    assert float(losses.cql_penalty(gap, 5.0, None, 0.8)[0]) == pytest.approx(5.0 * expected_gap, rel=1e-6)


def test_bound_inactive_leaves_values_unchanged():
    q_policy = jnp.array([[[2.0, 3.0]]])
    bounded, rate = losses.calibrate(q_policy, jnp.array([-1.0]))
    np.testing.assert_array_equal(bounded, q_policy)
    assert float(rate) == 0.0


def test_cql_gap_clips_per_sample_before_the_mean():
    ood = jnp.array([[3.0, -5.0]])
    q = jnp.array([[0.0, 0.0]])
    assert float(losses.cql_gap(ood, q, -1.0, 2.0)[0]) == pytest.approx((2.0 - 1.0) / 2)


def test_lagrange_penalty_uses_multiplier_times_alpha_times_gap_minus_target():
    gap = jnp.array([2.0, 1.0])
    penalty = losses.cql_penalty(gap, 5.0, jnp.array(np.e), 0.8)
    np.testing.assert_allclose(penalty, np.e * 5.0 * (gap - 0.8), rtol=1e-6)


@pytest.mark.parametrize("gap, direction", [(3.0, +1), (0.1, -1)])
def test_lagrange_multiplier_moves_towards_the_target_gap(gap, direction):
    """A gap above the target must raise alpha' (more conservatism), below it lower alpha'."""
    grad = jax.grad(losses.lagrange_loss)(jnp.array(1.0), jnp.array([gap, gap]), 5.0, 0.8)
    assert np.sign(-float(grad)) == direction  # gradient descent moves against the gradient


def test_lagrange_multiplier_is_exp_clipped():
    assert float(losses.lagrange_multiplier(jnp.array(1.0))) == pytest.approx(np.e, rel=1e-6)
    assert float(losses.lagrange_multiplier(jnp.array(50.0))) == pytest.approx(1e6)


def test_actor_loss_and_temperature_loss_values():
    log_pi = jnp.array([-1.0, -3.0])
    q_new = jnp.array([2.0, 4.0])
    assert float(losses.actor_loss(log_pi, q_new, jnp.array(0.5))) == pytest.approx(np.mean([-0.5 - 2, -1.5 - 4]))
    # H* = -A = -2: loss = -log_alpha * mean(log_pi + H*) = -0.3 * (-2 - 2)
    assert float(losses.temperature_loss(jnp.array(0.3), log_pi, -2.0)) == pytest.approx(1.2)


def test_temperature_falls_when_entropy_is_below_target():
    """log pi high (low entropy) relative to -H*: the temperature must grow; and vice versa."""
    grad_low_entropy = jax.grad(losses.temperature_loss)(jnp.array(0.0), jnp.array([5.0]), -2.0)
    grad_high_entropy = jax.grad(losses.temperature_loss)(jnp.array(0.0), jnp.array([-5.0]), -2.0)
    assert float(grad_low_entropy) < 0 < float(grad_high_entropy)


def test_td_loss_per_critic():
    q = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(losses.td_loss(q, jnp.array([0.0, 1.0])), [1.0, 0.5])
