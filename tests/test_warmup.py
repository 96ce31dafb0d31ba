"""No-retention fine-tuning with a warm-up (--warmup-steps with --mixing-ratio 0, WSRL-style):
the warm-up's episodes take no gradient step, no offline row enters a batch after it, and a run
stopped mid-warm-up resumes exactly, alone and as a seed of a --seeds group."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from calql.cli import main
from calql.config import ConfigError, TrainConfig, validate
from calql.data.replay import OnlineBuffer, sample_stack
from calql.data.transitions import Transitions
from calql.options import parse_train_args
from calql.training import checkpoint, phases
from calql.training.loop import train

OFFLINE_STEPS = 100
WARMUP = 500
TINY = [
    "--task",
    "pointmaze-umaze",
    "--offline-steps",
    str(OFFLINE_STEPS),
    "--online-steps",
    "900",
    "--warmup-steps",
    str(WARMUP),
    "--mixing-ratio",
    "0",
    "--dataset-size",
    "3000",
    "--eval-episodes",
    "1",
    "--eval-every",
    "300",
    "--updates-per-call",
    "25",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "100",
    "--keep-checkpoints",
    "20",
    "--agent.critic-hidden-dims",
    "8",
    "8",
    "--agent.policy-hidden-dims",
    "8",
    "8",
    "--agent.num-sampled-actions",
    "2",
    "--no-tensorboard",
]


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _episodes(run_dir: Path) -> list[dict]:
    return [row for row in _rows(run_dir) if row["phase"] == "online/train"]


def _check_no_step_during_the_warmup(run_dir: Path) -> None:
    """Every episode that began before the warm-up's end took no gradient step; every later one
    took len(episode) (UTD 1)."""
    episodes = _episodes(run_dir)
    steps_before = OFFLINE_STEPS
    warmup_episodes = 0
    for row in episodes:
        began = row["step"] - row["episode_length"]
        taken = 0 if began < WARMUP else row["episode_length"]
        warmup_episodes += began < WARMUP
        assert row["gradient_steps"] == steps_before + taken, row
        steps_before += taken
    assert 2 <= warmup_episodes < len(episodes)  # the test covers both sides of the warm-up


def _agent_and_meta(run_dir: Path, step: int | None = None):
    from calql.agent.state import create_agent
    from calql.config import config_from_dict
    from calql.training.metrics import read_config

    config = config_from_dict(read_config(run_dir))
    mgr = checkpoint.manager(run_dir, 20)
    agent, _, meta = checkpoint.restore_latest(mgr, create_agent(jax.random.PRNGKey(0), 4, 2, config.agent), step)
    mgr.close()
    return [np.asarray(leaf) for leaf in jax.tree.leaves(agent)], meta


def _checkpoints(run_dir: Path) -> dict[int, dict]:
    """{checkpoint number: its counters}."""
    mgr = checkpoint.manager(run_dir, 20)
    found = {step: checkpoint._saved_meta(mgr, step)["counters"] for step in mgr.all_steps()}
    mgr.close()
    return found


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """An uninterrupted warm-up run whose sampler records, per call, the online buffer's size and
    whether every sampled row is one of the buffer's rows (batch provenance)."""
    calls = []

    def recording(rng, offline, online, num_batches, batch_size, mixing_ratio):
        batches = sample_stack(rng, offline, online, num_batches, batch_size, mixing_ratio)
        if online is not None and online.size:
            stored = {row.tobytes() for row in online.data.observations[: online.size]}
            rows = batches.observations.reshape(-1, batches.observations.shape[-1])
            calls.append((online.size, all(row.tobytes() in stored for row in rows)))
        return batches

    folder = tmp_path_factory.mktemp("warmup")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(phases, "sample_stack", recording)
        result = train(parse_train_args([*TINY, "--run-dir", str(folder)]))
    return Path(result.run_dir), calls


def test_the_warmup_takes_no_gradient_step_and_leaves_the_agent_as_pre_trained(recorded):
    run_dir, calls = recorded
    _check_no_step_during_the_warmup(run_dir)
    counters = _checkpoints(run_dir)
    in_warmup = [step for step, c in counters.items() if 0 < c["online_done"] < WARMUP]
    assert in_warmup, "no checkpoint was written during the warm-up"
    pre_trained, _ = _agent_and_meta(run_dir, OFFLINE_STEPS)
    for step in in_warmup:
        during, _ = _agent_and_meta(run_dir, step)
        for a, b in zip(during, pre_trained, strict=True):
            np.testing.assert_array_equal(a, b)
    # The first online batch is sampled after the first episode that began past the warm-up.
    first_learning = next(row for row in _episodes(run_dir) if row["step"] - row["episode_length"] >= WARMUP)
    assert calls[0][0] == first_learning["step"]


def test_no_offline_row_enters_a_batch_after_the_warmup(recorded):
    _, calls = recorded
    assert calls and all(from_online_buffer for _, from_online_buffer in calls)


def _random_transitions(rng: np.random.Generator, size: int) -> Transitions:
    observations = rng.normal(size=(size, 4)).astype(np.float32)
    zeros = np.zeros(size, np.float32)
    return Transitions(observations, observations[:, :2], zeros, observations, zeros, zeros)


def test_the_provenance_check_sees_offline_rows_when_data_is_retained():
    """The check above can fail: with mixing ratio 0.5 half of each batch is offline rows."""
    rng = np.random.default_rng(0)
    offline = _random_transitions(rng, 50)
    buffer = OnlineBuffer(20, 4, 2)
    buffer.add(_random_transitions(rng, 10))
    stored = {row.tobytes() for row in buffer.data.observations[: buffer.size]}
    mixed = sample_stack(rng, offline, buffer, 2, 8, 0.5).observations.reshape(-1, 4)
    assert sum(row.tobytes() in stored for row in mixed) == 8
    alone = sample_stack(rng, offline, buffer, 2, 8, 0.0).observations.reshape(-1, 4)
    assert all(row.tobytes() in stored for row in alone)


def _stopped_mid_warmup(run_dir: Path, copy: Path) -> int:
    """A copy of a finished run as if killed after its newest checkpoint inside the warm-up;
    that checkpoint's online step."""
    shutil.copytree(run_dir, copy)
    (copy / "summary.json").unlink()
    counters = _checkpoints(copy)
    kept = max(step for step, c in counters.items() if 0 < c["online_done"] < WARMUP)
    for step in counters:
        if step > kept:
            shutil.rmtree(copy / "checkpoints" / str(step))
    return counters[kept]["online_done"]


def test_a_run_stopped_mid_warmup_resumes_exactly(recorded, tmp_path):
    run_dir, _ = recorded
    copy = tmp_path / "stopped"
    assert 0 < _stopped_mid_warmup(run_dir, copy) < WARMUP
    assert main(["train", "--resume", str(copy)]) == 0
    assert (copy / "metrics.jsonl").read_text() == (run_dir / "metrics.jsonl").read_text()
    resumed, resumed_meta = _agent_and_meta(copy)
    uninterrupted, meta = _agent_and_meta(run_dir)
    for a, b in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed_meta["counters"] == meta["counters"]


def test_seeds_warm_up_and_one_resumed_alone_mid_warmup_continues_as_in_the_group(tmp_path):
    assert main(["train", *TINY, "--seeds", "3", "4", "--run-dir", str(tmp_path), "--run-name", "g"]) == 0
    for seed in (3, 4):
        _check_no_step_during_the_warmup(tmp_path / f"g-s{seed}")
    alone = tmp_path / "alone"
    _stopped_mid_warmup(tmp_path / "g-s4", alone)
    assert main(["train", "--resume", str(alone)]) == 0
    assert (alone / "metrics.jsonl").read_text() == (tmp_path / "g-s4" / "metrics.jsonl").read_text()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"warmup_steps": -1}, "--warmup-steps must be >= 0, got -1"),
        ({"warmup_steps": 1000, "online_steps": 1000}, "--warmup-steps 1000 must be below --online-steps 1000"),
        ({"warmup_steps": 10, "online_steps": 0}, "--warmup-steps 10 must be below --online-steps 0"),
    ],
)
def test_warmup_option_is_validated(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(TrainConfig(**changes))


def test_a_refused_warmup_is_one_line_on_the_command_line(capsys):
    assert main(["train", "--online-steps", "200", "--warmup-steps", "200"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("calql: error: --warmup-steps 200 must be below --online-steps 200")
    assert len(err.splitlines()) == 1


def test_no_warmup_is_todays_fine_tuning():
    config = TrainConfig()
    assert config.warmup_steps == 0
    assert [phases.online_updates(config, before, 120) for before in (0, 1, 5000)] == [120, 120, 120]
    warm = TrainConfig(warmup_steps=300, utd=2)
    assert [phases.online_updates(warm, before, 120) for before in (0, 299, 300, 420)] == [0, 0, 240, 240]
