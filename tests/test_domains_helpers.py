"""Shared helpers of the per-domain tests (test_domains_*.py): a short training run and the
return checks. No tests here."""

import dataclasses
import math

import numpy as np

from calql.config import PRESETS
from calql.data.replay import offline_transitions
from calql.data.returns import transform_rewards


def short_train(task, tmp_path, monkeypatch, offline_steps=20, dataset_size=1):
    """A few Cal-QL gradient steps and one evaluation episode on `task` (bound to its dataset),
    through calql.training.loop.train with tiny networks."""
    from calql.training import loop

    monkeypatch.setattr(loop, "get_task", lambda name: task)
    preset = PRESETS[task.preset]
    config = dataclasses.replace(
        preset, task=task.name, offline_steps=offline_steps, online_steps=0, eval_episodes=1, batch_size=16,
        updates_per_call=10, dataset_size=dataset_size, run_dir=str(tmp_path), tensorboard=False,
        checkpoint_every=10**9,
        agent=dataclasses.replace(preset.agent, critic_hidden_dims=(16, 16), policy_hidden_dims=(16, 16)),
    )
    result = loop.train(config)
    assert result.offline["step"] == offline_steps and math.isfinite(result.offline["normalized_score"])
    assert 0.0 <= result.offline["success"] <= 1.0
    return result


def offline_returns(task, data, discount=0.99):
    """The offline transitions the loop builds from `data` (transform first, then MC returns)."""
    rewards = transform_rewards(data["rewards"], task.reward_scale, task.reward_bias)
    return offline_transitions(data["observations"], data["actions"], rewards, data["next_observations"],
                               data["terminals"], data["timeouts"], discount, task.sparse_failure_reward)


def assert_all_failure_rule(task, data, discount=0.99):
    """Trajectories that never succeed get G = r_fail / (1 - gamma) at every step."""
    transitions = offline_returns(task, data, discount)
    if not np.any(data["rewards"] != task.failure_reward):
        np.testing.assert_allclose(transitions.mc_returns, task.sparse_failure_reward / (1 - discount), rtol=1e-6)
    return transitions
