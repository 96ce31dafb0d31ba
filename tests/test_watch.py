"""The Lagrange runaway watch: one line, once, only when alpha' grows while the gap stays above its target."""

import json
from pathlib import Path

from test_cli import TINY_RUN

from calql.cli import main
from calql.training.watch import LagrangeWatch


def _feed(watch: LagrangeWatch, rows) -> list[str]:
    return [message for step, gap, multiplier in rows if (message := watch.observe(step, gap, multiplier))]


def test_growth_while_the_gap_stays_above_the_target_warns_once():
    rows = [(1000 * i, 2.5, 2.7 * 2.0**i) for i in range(15)]  # doubling every 1k steps: 1000x after 10
    messages = _feed(LagrangeWatch(0.8), rows)
    assert len(messages) == 1
    assert "gradient step 10000" in messages[0] and "since step 0" in messages[0]
    assert "--agent.no-cql-lagrange" in messages[0] and "\n" not in messages[0]


def test_a_multiplier_at_its_clip_warns_at_once():
    (message,) = _feed(LagrangeWatch(0.8), [(0, 2.5, 5.0), (500, 2.5, 1e6)])
    assert "is at its clip 1e6" in message


def test_growth_interrupted_by_a_reached_target_does_not_warn():
    """The authors' AntMaze case: alpha' grows early, the gap falls below the target, alpha' shrinks."""
    rows = [(1000 * i, 2.0 if i % 8 else 0.5, 2.7 * 2.0 ** (i % 8)) for i in range(40)]
    assert _feed(LagrangeWatch(0.8), rows) == []


def test_a_gap_below_the_target_never_warns():
    assert _feed(LagrangeWatch(5.0), [(i, 2.5, 1e5 * i) for i in range(1, 50)]) == []


def test_a_run_whose_multiplier_runs_away_says_so_in_one_line_and_in_its_summary(tmp_path, capsys):
    """A critic (and multiplier) learning rate of 0.01 makes alpha' grow 1000x within ~700 steps
    (records every 100 steps); the tiny maze's gap stays near 2.5, above the 0.8 target."""
    args = [
        *TINY_RUN,
        "--offline-steps",
        "800",
        "--online-steps",
        "0",
        "--updates-per-call",
        "10",
        "--agent.cql-lagrange",
        "--agent.cql-target-action-gap",
        "0.8",
        "--agent.critic-lr",
        "0.01",
        "--run-dir",
        str(tmp_path),
    ]
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "Lagrange multiplier" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    (run_dir,) = [p for p in Path(tmp_path).iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["warnings"]) == 1
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("critic/cql_multiplier" in row for row in rows if row["phase"] == "offline/train")
