"""Networks: tanh-Gaussian log-prob and initialisation (docs/algorithm.md section 3)."""

import jax
import jax.numpy as jnp
import numpy as np

from calql.agent.networks import MLP, CriticEnsemble, TanhGaussianPolicy, sample_tanh_gaussian, tanh_gaussian_log_prob


def test_tanh_gaussian_log_prob_matches_numerical_change_of_variables():
    """log p(a) = log N(atanh(a)) - log |d tanh/du| with the Jacobian taken numerically."""
    mean = jnp.array([0.3, -1.2])
    log_std = jnp.array([-0.5, 0.4])
    u = jnp.array([0.7, -2.1])
    eps = 1e-3
    u64 = np.asarray(u, np.float64)
    jacobian = (np.tanh(u64 + eps) - np.tanh(u64 - eps)) / (2 * eps)
    std = np.exp(np.asarray(log_std, np.float64))
    gaussian = -0.5 * ((u64 - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    expected = np.sum(gaussian - np.log(jacobian))
    np.testing.assert_allclose(float(tanh_gaussian_log_prob(mean, log_std, u)), expected, rtol=1e-4)


def test_log_prob_stays_finite_for_saturated_actions():
    value = tanh_gaussian_log_prob(jnp.zeros(1), jnp.zeros(1), jnp.array([30.0]))
    assert np.isfinite(float(value))


def test_sample_shapes_and_bounds():
    mean, log_std = jnp.zeros((4, 3)), jnp.zeros((4, 3))
    actions, log_pi = sample_tanh_gaussian(jax.random.PRNGKey(0), mean, log_std, 10)
    assert actions.shape == (4, 10, 3) and log_pi.shape == (4, 10)
    assert float(jnp.abs(actions).max()) < 1.0
    single, single_log_pi = sample_tanh_gaussian(jax.random.PRNGKey(0), mean, log_std)
    assert single.shape == (4, 3) and single_log_pi.shape == (4,)


def test_policy_log_std_is_offset_and_clipped():
    policy = TanhGaussianPolicy((8,), 2)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    _, log_std = policy.apply(params, jnp.zeros((1, 3)))
    # Zero input and zero biases: raw log_std = 0, so log_std = offset -1.
    np.testing.assert_allclose(log_std, -1.0)
    _, big = policy.apply(jax.tree.map(lambda p: p * 1e4, params), jnp.ones((1, 3)) * 100)
    assert float(big.max()) <= 2.0 and float(big.min()) >= -20.0


def test_log_std_multiplier_and_offset_are_learnable_scalars_that_receive_gradients():
    """The authors' policy: log_std = m * raw + o, m and o trainable (init 1 and -1)."""
    policy = TanhGaussianPolicy((8,), 2)
    obs = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
    params = policy.init(jax.random.PRNGKey(0), obs)
    scalars = params["params"]
    assert float(scalars["log_std_multiplier"]) == 1.0 and float(scalars["log_std_offset"]) == -1.0
    doubled = jax.tree_util.tree_map_with_path(
        lambda path, p: p * 2.0 if "log_std_multiplier" in str(path) else p, params
    )
    out = policy.apply(params, obs)[1]
    # Both are inside the clip here, so doubling m maps log_std = raw - 1 to 2 raw - 1.
    np.testing.assert_allclose(policy.apply(doubled, obs)[1], 2.0 * (out + 1.0) - 1.0, rtol=1e-5, atol=1e-6)

    def entropy_proxy(p):
        actions, log_pi = sample_tanh_gaussian(jax.random.PRNGKey(2), *policy.apply(p, obs))
        return jnp.mean(log_pi)

    grads = jax.grad(entropy_proxy)(params)["params"]
    assert float(jnp.abs(grads["log_std_multiplier"])) > 0.0
    assert float(jnp.abs(grads["log_std_offset"])) > 0.0


def test_orthogonal_init_gains_and_zero_bias():
    params = MLP((64, 64), 1).init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))
    hidden = np.asarray(params["params"]["Dense_1"]["kernel"])
    np.testing.assert_allclose(hidden.T @ hidden, 2.0 * np.eye(64), atol=1e-4)  # gain sqrt(2)
    out = np.asarray(params["params"]["Dense_2"]["kernel"])
    np.testing.assert_allclose(np.linalg.norm(out), 1e-2, rtol=1e-4)  # gain 1e-2
    assert all(float(jnp.abs(layer["bias"]).max()) == 0.0 for layer in params["params"].values())


def test_critic_ensemble_members_differ_and_layer_norm_option():
    for layer_norm in (False, True):
        ensemble = CriticEnsemble((16, 16), num_critics=3, layer_norm=layer_norm)
        obs, act = jnp.ones((5, 4)), jnp.ones((5, 2))
        params = ensemble.init(jax.random.PRNGKey(1), obs, act)
        q = ensemble.apply(params, obs, act)
        assert q.shape == (3, 5)
        assert len(set(np.round(np.asarray(q[:, 0]), 8))) == 3
        has_ln = any("LayerNorm" in str(path) for path, _ in jax.tree_util.tree_leaves_with_path(params))
        assert has_ln == layer_norm
