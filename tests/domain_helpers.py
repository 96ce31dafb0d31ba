"""Test helper (not a test module): what the per-domain tests (test_domains_*.py,
test_awac_npy.py) share -- a short training run and the return checks."""

import math

import numpy as np

from calql.data.replay import offline_transitions
from calql.data.returns import transform_rewards


def short_train(task, tmp_path, offline_steps=20, dataset_size=1):
    """A few Cal-QL gradient steps and one evaluation episode through the real command line:
    `calql train --task NAME --dataset SOURCE` with tiny networks (SOURCE = the task's bound data)."""
    import json
    from pathlib import Path

    from calql.cli import main

    args = [
        "train",
        "--task",
        task.name,
        "--dataset",
        task.default_dataset,
        "--offline-steps",
        str(offline_steps),
        "--online-steps",
        "0",
        "--eval-episodes",
        "1",
        "--batch-size",
        "16",
        "--updates-per-call",
        "10",
        "--dataset-size",
        str(dataset_size),
        "--run-dir",
        str(tmp_path),
        "--no-tensorboard",
        "--checkpoint-every",
        "0",
        "--agent.critic-hidden-dims",
        "16",
        "16",
        "--agent.policy-hidden-dims",
        "16",
        "16",
    ]
    assert main(args) == 0
    (run_dir,) = [p for p in Path(tmp_path).iterdir() if p.is_dir()]
    offline = json.loads((run_dir / "summary.json").read_text())["offline"]
    assert offline["step"] == offline_steps and math.isfinite(offline["normalized_score"])
    assert 0.0 <= offline["success"] <= 1.0
    return offline


def offline_returns(task, data, discount=0.99):
    """The offline transitions the loop builds from `data` (transform first, then MC returns)."""
    rewards = transform_rewards(data["rewards"], task.reward_scale, task.reward_bias)
    return offline_transitions(
        data["observations"],
        data["actions"],
        rewards,
        data["next_observations"],
        data["terminals"],
        data["timeouts"],
        task.return_rule(discount),
    )


def assert_all_failure_rule(task, data, discount=0.99):
    """Trajectories that never succeed get G = r_fail / (1 - gamma) at every step."""
    transitions = offline_returns(task, data, discount)
    if not np.any(data["rewards"] != task.failure_reward):
        np.testing.assert_allclose(transitions.reference, task.sparse_failure_reward / (1 - discount), rtol=1e-6)
    return transitions
