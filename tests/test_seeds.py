"""Many seeds in one process: a vmapped run matches separate single-seed runs."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np

from calql.cli import main
from calql.options import parse_train_args
from calql.training import checkpoint
from calql.training.loop import train, train_seeds

SHORT = [
    "--task",
    "pointmaze-umaze",
    "--offline-steps",
    "150",
    "--online-steps",
    "0",
    "--dataset-size",
    "4000",
    "--eval-episodes",
    "1",
    "--updates-per-call",
    "50",
    "--batch-size",
    "16",
    "--agent.critic-hidden-dims",
    "8",
    "8",
    "--agent.policy-hidden-dims",
    "8",
    "8",
    "--agent.num-sampled-actions",
    "2",
]


def _final_params(run_dir: str):
    from calql.agent.state import create_agent
    from calql.config import config_from_dict
    from calql.training.metrics import read_config

    config = config_from_dict(read_config(Path(run_dir)))
    mgr = checkpoint.manager(Path(run_dir), 3)
    agent, _, meta = checkpoint.restore_latest(mgr, create_agent(jax.random.PRNGKey(0), 4, 2, config.agent))
    mgr.close()
    return [np.asarray(leaf) for leaf in jax.tree.leaves(agent)], meta


def test_vmapped_seeds_match_separate_single_seed_runs(tmp_path):
    """XLA picks other matmul kernels for batched shapes, so agreement is to float32 rounding
    (a few ulp per step), not bitwise."""
    config = parse_train_args([*SHORT, "--run-dir", str(tmp_path / "many")])
    many = train_seeds(config, [0, 1])
    for seed, result in zip([0, 1], many):
        single = train(parse_train_args([*SHORT, "--seed", str(seed), "--run-dir", str(tmp_path / f"single{seed}")]))
        params_many, meta_many = _final_params(result.run_dir)
        params_single, meta_single = _final_params(single.run_dir)
        assert meta_many["counters"]["gradient_steps"] == meta_single["counters"]["gradient_steps"] == 150
        for a, b in zip(params_many, params_single, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
        saved = json.loads((Path(result.run_dir) / "config.json").read_text())["config"]
        assert saved["seed"] == seed and saved["seeds"] == []
    seed0, seed1 = (_final_params(r.run_dir)[0] for r in many)
    differing = [not np.allclose(a, b) for a, b in zip(seed0, seed1)]
    assert sum(differing) > len(differing) // 2  # the seeds really are independent agents


def test_seeds_through_the_cli_with_fine_tuning(tmp_path, capsys):
    args = [*SHORT, "--online-steps", "200", "--eval-every", "100", "--seeds", "3", "4", "--run-dir", str(tmp_path)]
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    assert "(seed 3)" in out and "(seed 4)" in out
    run_dirs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        online = [row for row in rows if row["phase"] == "online/train"]
        assert online and online[-1]["step"] >= 200
        assert online[-1]["gradient_steps"] == 150 + online[-1]["step"]


def test_resume_with_seeds_is_refused(tmp_path, capsys):
    assert main(["train", *SHORT, "--seeds", "0", "1", "--resume", str(tmp_path)]) == 2


def _rows_without_timing(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if "time" not in k and "per_second" not in k} for row in rows]


def test_one_seed_of_a_group_resumed_alone_continues_exactly_as_in_the_group(tmp_path):
    """The resumed seed is updated in as many vmapped lanes as its group had, so its metrics are
    bitwise those of the uninterrupted group (a single-lane update would drift at float level)."""
    group = [*SHORT, "--online-steps", "300", "--eval-every", "100", "--checkpoint-every", "100"]
    group += ["--keep-checkpoints", "10", "--seeds", "3", "4", "--run-dir", str(tmp_path), "--run-name", "g"]
    assert main(["train", *group]) == 0
    uninterrupted = tmp_path / "g-s4"
    assert json.loads((uninterrupted / "config.json").read_text())["update_lanes"] == 2
    resumed = tmp_path / "alone"
    shutil.copytree(uninterrupted, resumed)
    (resumed / "summary.json").unlink()
    steps = sorted(int(p.name) for p in (resumed / "checkpoints").iterdir() if p.name.isdigit())
    for step in steps[-3:]:  # as if killed after the offline phase, mid fine-tuning
        shutil.rmtree(resumed / "checkpoints" / str(step))
    assert main(["train", "--resume", str(resumed)]) == 0
    assert _rows_without_timing(resumed) == _rows_without_timing(uninterrupted)
