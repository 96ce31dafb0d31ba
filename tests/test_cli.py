"""The command line: bad input gets one clear line; a short run goes end to end."""

import json
from pathlib import Path

import numpy as np
import pytest

from calql.cli import main
from calql.config import PRESETS
from calql.options import parse_train_args

TINY_RUN = [
    "--task",
    "pointmaze-umaze",
    "--offline-steps",
    "200",
    "--online-steps",
    "300",
    "--dataset-size",
    "5000",
    "--eval-episodes",
    "2",
    "--eval-every",
    "150",
    "--updates-per-call",
    "50",
    "--batch-size",
    "32",
    "--agent.critic-hidden-dims",
    "16",
    "16",
    "--agent.policy-hidden-dims",
    "16",
    "16",
]


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--task", "nope"],
            "--task: unknown task 'nope'; accepted: pointmaze-large, pointmaze-large-narrow, pointmaze-medium, "
            "pointmaze-medium-narrow, pointmaze-umaze, pointmaze-umaze-narrow",
        ),
        (["--offline-steps", "-1"], "--offline-steps must be >= 0, got -1"),
        (["--online-steps", "-3"], "--online-steps must be >= 0, got -3"),
        (["--mixing-ratio", "1.5"], "--mixing-ratio must be in [0, 1], got 1.5"),
        (["--batch-size", "255"], "--batch-size 255 x --mixing-ratio 0.5 = 127.5 offline rows per batch"),
        (["--agent.critic-lr", "-1"], "--agent.critic-lr must be > 0 and finite, got -1.0"),
        (["--agent.critic-lr", "0"], "--agent.critic-lr must be > 0 and finite, got 0.0"),
        (["--agent.policy-lr", "inf"], "--agent.policy-lr must be > 0 and finite, got inf"),
        (["--agent.policy-lr", "nan"], "--agent.policy-lr must be > 0 and finite, got nan"),
        (
            ["--agent.critic-hidden-dims", "16", "0"],
            "--agent.critic-hidden-dims needs one or more layer widths, each >= 1, got [16, 0]",
        ),
        (
            ["--agent.policy-hidden-dims", "-4"],
            "--agent.policy-hidden-dims needs one or more layer widths, each >= 1, got [-4]",
        ),
        (["--agent.cql-alpha", "-0.5"], "--agent.cql-alpha must be >= 0 and finite, got -0.5"),
        (["--agent.num-sampled-actions", "0"], "--agent.num-sampled-actions must be >= 1, got 0"),
        (["--agent.init-log-temperature", "inf"], "--agent.init-log-temperature must be finite, got inf"),
        (
            ["--preset", "nope"],
            "--preset: unknown preset 'nope'; accepted: antmaze, adroit, adroit-pen, kitchen, manipulation, pointmaze",
        ),
    ],
)
def test_bad_options_get_one_line_errors(args, expected, capsys):
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("calql: error: " + expected)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unknown_algorithm_names_the_option_and_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--algo", "sac"])  # (iql was the example before IQL was added)
    assert exit_info.value.code == 2
    out = capsys.readouterr()
    text = " ".join((out.err + out.out).split())
    assert "--algo" in text and "calql" in text and "cql" in text and "iql" in text and "Traceback" not in text


def test_unknown_command(capsys):
    assert main(["fly"]) == 2
    assert "unknown command 'fly'; accepted: train, eval, plot, compare, datasets" in capsys.readouterr().err


def test_presets_and_overrides():
    antmaze = parse_train_args(["--preset", "antmaze", "--seed", "3"])
    assert antmaze.agent == PRESETS["antmaze"].agent and antmaze.seed == 3
    default = parse_train_args([])
    assert default.agent.critic_hidden_dims == PRESETS["pointmaze"].agent.critic_hidden_dims
    cql = parse_train_args(["--algo", "cql", "--agent.cql-alpha", "1.0", "--mixing-ratio", "0.25"])
    assert cql.algo == "cql" and cql.agent.cql_alpha == 1.0 and cql.mixing_ratio == 0.25


@pytest.mark.parametrize("algo", ["calql", "cql"])
def test_a_short_train_run_goes_end_to_end(algo, tmp_path, capsys):
    assert main(["train", *TINY_RUN, "--algo", algo, "--run-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "after offline pre-training" in out and "after online fine-tuning" in out and "cumulative regret" in out
    run_dir = next(Path(tmp_path).iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    phases = {row["phase"] for row in rows}
    assert {"offline/train", "offline/eval", "online/train", "online/eval"} <= phases
    online_evals = [row for row in rows if row["phase"] == "online/eval"]
    assert online_evals[0]["step"] == 0 and "cumulative_regret" not in online_evals[0]  # before any episode
    assert all(0.0 <= row["cumulative_regret"] <= 1.0 for row in online_evals[1:])
    train_rows = [row for row in rows if row["phase"] == "offline/train"]
    assert train_rows[-1]["step"] == 200 and "critic/bound_rate" in train_rows[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["offline"]) >= {"success", "normalized_score", "return", "calibration/q_data"}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["algo"] == algo


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("calibrate_online, utd", [(True, 1), (False, 2)])
def test_online_phase_takes_utd_updates_per_env_step_and_follows_the_calibration_option(
    calibrate_online, utd, tmp_path
):
    from calql.training.loop import train

    args = [*TINY_RUN, "--utd", str(utd), "--run-dir", str(tmp_path)]
    args += [] if calibrate_online else ["--no-calibrate-online"]
    result = train(parse_train_args(args))
    rows = _rows(Path(result.run_dir))
    offline = [row for row in rows if row["phase"] == "offline/train"]
    online = [row for row in rows if row["phase"] == "online/train"]
    assert all(row["calibrated"] == 1.0 for row in offline)  # Cal-QL offline either way
    assert all(row["calibrated"] == float(calibrate_online) for row in online)
    env_steps = online[-1]["step"]
    assert env_steps >= 300
    assert online[-1]["gradient_steps"] == 200 + utd * env_steps
    assert sum(row["episode_length"] for row in online) == env_steps


@pytest.mark.parametrize(
    "field, row, value, expected",
    [
        ("rewards", 7, np.nan, "field 'rewards' has 1 NaN or infinite values (first at row 7)"),
        ("actions", 3, 7.5, "field 'actions' has 1 rows outside the action bounds"),
    ],
)
def test_a_bad_builtin_cache_is_one_line_naming_the_folder(field, row, value, expected, tmp_path, monkeypatch, capsys):
    from calql.envs import cache, pointmaze

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    data = pointmaze.generate_dataset("umaze", 5000, seed=0)
    data[field] = data[field].copy()
    data[field][row] = value
    env = pointmaze.make_env("umaze")
    cache.write_minari(pointmaze.dataset_id("umaze", 5000, 0), data, env, "test", "a corrupted cache")
    env.close()
    assert main(["train", *TINY_RUN, "--run-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    folder = tmp_path / "minari" / pointmaze.dataset_id("umaze", 5000, 0)
    assert err.startswith(f"calql: error: corrupt dataset cache at {folder} (") and expected in err
    assert err.strip().endswith("delete that folder to regenerate it")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_a_losing_cache_writer_leaves_the_winners_folder(tmp_path, monkeypatch):
    import pathlib

    import minari

    from calql.envs import cache, pointmaze

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    data = pointmaze.generate_dataset("umaze", 300, seed=0)
    env = pointmaze.make_env("umaze")
    dataset_id = pointmaze.dataset_id("umaze", 300, 0)
    cache.write_minari(dataset_id, data, env, "test", "the winner")
    with monkeypatch.context() as patch, pytest.raises(ValueError, match="already exists"):
        patch.setattr(pathlib.Path, "exists", lambda self: False)  # it looked before the winner finished
        cache.write_minari(dataset_id, data, env, "test", "the loser")
    env.close()
    assert minari.load_dataset(dataset_id).total_steps == 300


def test_empty_hidden_dims_are_refused_naming_the_option():
    import dataclasses

    from calql.config import ConfigError, TrainConfig, validate

    config = TrainConfig()
    with pytest.raises(ConfigError, match=r"--agent.critic-hidden-dims needs one or more layer widths.*got \[\]"):
        validate(dataclasses.replace(config, agent=dataclasses.replace(config.agent, critic_hidden_dims=())))


DIVERGING = [*TINY_RUN, "--online-steps", "0", "--offline-steps", "400", "--checkpoint-every", "100"]


def test_a_diverging_run_stops_in_one_line_without_a_summary(tmp_path, capsys):
    assert main(["train", *DIVERGING, "--agent.critic-lr", "1e6", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("calql: error:")]
    assert len(errors) == 1 and errors[0].startswith("calql: error: training diverged at offline gradient step ")
    assert "critic/td_loss is " in errors[0] and "--agent.critic-lr" in errors[0] and "Traceback" not in err
    run_dir = next(Path(tmp_path).iterdir())
    assert not (run_dir / "summary.json").exists()


def test_divergence_names_the_step_the_loss_and_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from calql.training import phases

    calls, real = [], phases.mean_metrics

    def nan_after_four_calls(metrics):
        calls.append(1)
        means = real(metrics)
        return {**means, "critic/td_loss": float("nan")} if len(calls) > 4 else means

    monkeypatch.setattr(phases, "mean_metrics", nan_after_four_calls)
    assert main(["train", *DIVERGING, "--run-dir", str(tmp_path)]) == 2
    run_dir = next(Path(tmp_path).iterdir())
    last_line = capsys.readouterr().err.splitlines()[-1]
    assert last_line.startswith(
        "calql: error: training diverged at offline gradient step 300: critic/td_loss is nan; "
        f"the last good checkpoint is {run_dir / 'checkpoints' / '200'}; start a new run with a lower"
    )
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["phase"] == "offline/train"] == [100, 200]
    assert not (run_dir / "summary.json").exists()


def test_no_online_steps_writes_a_null_regret_that_every_reader_copes_with(tmp_path, capsys):
    import math

    from calql.console import regret_text
    from calql.reporting.protocol import cumulative_regret
    from calql.reporting.runs import load_run

    assert main(["train", *TINY_RUN, "--online-steps", "0", "--offline-steps", "50", "--run-dir", str(tmp_path)]) == 0
    assert "cumulative regret: n/a (no online episodes)" in capsys.readouterr().out
    run_dir = next(Path(tmp_path).iterdir())
    text = (run_dir / "summary.json").read_text()
    assert json.loads(text)["regret"] is None and "NaN" not in text
    assert math.isnan(cumulative_regret(load_run(run_dir)))
    assert regret_text(None) == regret_text(math.nan) == "n/a (no online episodes)" and regret_text(0.25) == "0.250"


def test_a_run_name_that_is_a_folder_of_other_files_is_refused(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("precious\n")
    args = ["train", *TINY_RUN, "--run-dir", str(tmp_path), "--run-name", "mine"]
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        f"calql: error: --run-name: {folder} exists and holds files but is not a calql run (no config.json); "
        "choose another --run-name or --run-dir, or empty that folder"
    )
    assert (folder / "metrics.jsonl").read_text() == "precious\n"
    assert sorted(folder.iterdir()) == [folder / "metrics.jsonl"]  # no checkpoints/ either
