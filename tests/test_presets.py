"""Presets against the authors' run scripts (docs/algorithm.md section 6)."""

import pytest

from calql.config import PRESETS
from calql.envs.tasks import get_task


@pytest.mark.parametrize(
    "task, offline, online, eval_every, offline_eval_every, mixing",
    [
        ("antmaze-large-diverse", 1_000_000, 1_000_000, 2_000, 50_000, 0.5),
        ("pen-binary", 20_000, 200_000, 2_000, 2_000, 0.5),
        ("door-binary", 20_000, 1_000_000, 2_000, 2_000, 0.5),
        ("relocate-binary", 20_000, 1_000_000, 2_000, 2_000, 0.5),
        ("kitchen-mixed", 500_000, 1_500_000, 5_000, 50_000, 0.25),
    ],
)
def test_each_domain_has_the_authors_budgets_and_evaluation(
    task, offline, online, eval_every, offline_eval_every, mixing
):
    preset = PRESETS[get_task(task).preset]
    assert (preset.offline_steps, preset.online_steps, preset.eval_every, preset.offline_eval_every) == (
        offline,
        online,
        eval_every,
        offline_eval_every,
    )
    assert preset.mixing_ratio == mixing and preset.eval_episodes == 20


def test_kitchen_networks_and_cql_settings():
    agent = PRESETS["kitchen"].agent
    assert agent.critic_hidden_dims == (512, 512, 512) and agent.policy_hidden_dims == (512, 512, 512)
    assert agent.cql_alpha == 5.0 and not agent.cql_lagrange and not agent.cql_importance_sample


def test_the_lagrange_version_is_kept_only_where_its_target_is_reachable():
    """AntMaze (8-D actions): the authors' Lagrange target 0.8. The built-in 2-D PointMaze cannot
    bring the CQL gap down to it, so its preset uses a fixed weight like Adroit and kitchen."""
    assert PRESETS["antmaze"].agent.cql_lagrange and PRESETS["antmaze"].agent.cql_target_action_gap == 0.8
    for name in ("pointmaze", "adroit", "adroit-pen", "kitchen"):
        assert not PRESETS[name].agent.cql_lagrange, name
    assert PRESETS["pointmaze"].agent.cql_alpha == 5.0


def test_the_default_task_runs_the_headline_experiments_settings():
    """`calql train` with no options is one trial of experiments/umaze-narrow.toml (Cal-QL, Monte-
    Carlo reference): the same configuration the committed headline results were made with."""
    import dataclasses
    import json
    from pathlib import Path

    from calql.config import TrainConfig, config_from_dict
    from calql.options import parse_train_args

    assert TrainConfig.task == "pointmaze-umaze-narrow"
    assert get_task("pointmaze-large-narrow").preset == "pointmaze-narrow"
    headline = Path(__file__).parent.parent / "docs/results/umaze-narrow/trials/pointmaze-umaze-narrow-calql-s0"
    trial = config_from_dict(json.loads((headline / "config.json").read_text())["config"])
    where = {"run_dir": "", "run_name": "", "checkpoint_every": 0, "keep_checkpoints": 0, "tensorboard": False}
    assert dataclasses.replace(parse_train_args([]), **where) == dataclasses.replace(trial, **where)
