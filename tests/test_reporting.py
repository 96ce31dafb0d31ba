"""Plots and reports: the drawn points and the tabulated numbers are the runs' own metrics;
bad run directories get one clear line."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from calql.commands import compare, plot
from calql.config import online_eval_steps
from calql.reporting import stats
from calql.reporting.plots import finetuning_zoom, learning_curve, regret
from calql.reporting.protocol import final_score, finetuning_dip, start_score
from calql.reporting.report import write_report
from calql.reporting.runs import RunData, find_runs, group_runs, load_run, online_curve

CONFIG = {
    "task": "pointmaze-umaze",
    "offline_steps": 300,
    "offline_eval_every": 100,
    "online_steps": 500,
    "eval_every": 200,
    "eval_episodes": 2,
    "dataset_size": 5000,
    "dataset_seed": 0,
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _eval(phase, step, score, q, regret=None):
    row = {
        "phase": f"{phase}/eval",
        "step": step,
        "return": score / 100,
        "success": score / 100,
        "normalized_score": score,
        "calibration/q_data": q,
        "calibration/mc_return": -50.0,
    }
    return row if regret is None else {**row, "cumulative_regret": regret}


def make_run(
    root: Path, algo: str, seed: int, offline: list, online: list, task="pointmaze-umaze", finished=True
) -> Path:
    """A run directory as calql.training.loop.train writes it, with known numbers.
    offline: [(step, score, q)]; online: [(step, score, q, regret)]."""
    path = root / f"{task}-{algo}-s{seed}"
    path.mkdir(parents=True)
    config = {**CONFIG, "task": task, "algo": algo, "seed": seed}
    (path / "config.json").write_text(json.dumps({"calql_version": "0.1.0", "config": config}))
    rows = []
    for step, score, q in offline:
        rows += [{"phase": "offline/train", "step": step, "critic/loss": 1.0}, _eval("offline", step, score, q)]
    for step, score, q, reg in online:
        rows += [{"phase": "online/train", "step": step, "episode_success": 0.0}, _eval("online", step, score, q, reg)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if finished:
        summary = {
            "run_dir": str(path),
            "offline": rows[2 * len(offline) - 1],
            "final": rows[-1],
            "regret": online[-1][3],
            "wall_time": 1.0,
            "timers": {},
        }
        (path / "summary.json").write_text(json.dumps(summary))
    return path


@pytest.fixture
def two_seeds(tmp_path):
    """Cal-QL and CQL, two seeds each. Online evaluations land at the first episode end past
    200, 400 and 500 steps; CQL seed 1's episode ending at 450 passes both 200 and 400."""
    root = tmp_path / "runs"
    make_run(
        root,
        "calql",
        0,
        [(100, 10, -5), (200, 30, -8), (300, 50, -9)],
        [(210, 55, -9, 0.6), (420, 70, -7, 0.5), (510, 90, -6, 0.4)],
    )
    make_run(
        root,
        "calql",
        1,
        [(100, 20, -6), (200, 40, -7), (300, 60, -8)],
        [(250, 65, -8, 0.7), (400, 80, -7, 0.6), (530, 100, -5, 0.5)],
    )
    make_run(
        root,
        "cql",
        0,
        [(100, 10, -30), (200, 35, -40), (300, 55, -45)],
        [(230, 5, -45, 0.9), (480, 40, -30, 0.8), (505, 70, -20, 0.7)],
    )
    make_run(
        root, "cql", 1, [(100, 15, -35), (200, 45, -42), (300, 65, -48)], [(450, 20, -40, 0.95), (600, 60, -25, 0.85)]
    )
    return root


def test_online_curve_takes_each_seeds_evaluation_past_each_nominal_step(two_seeds):
    groups = group_runs(find_runs([two_seeds]))
    assert [(task, algo) for task, algo in groups] == [("pointmaze-umaze", "calql"), ("pointmaze-umaze", "cql")]
    curve = online_curve(groups["pointmaze-umaze", "cql"], "normalized_score")
    np.testing.assert_array_equal(curve.steps, [0, 200, 400, 500])
    # step 0: the last offline evaluation; seed 1's evaluation at 450 stands for 200 and 400.
    np.testing.assert_array_equal(curve.values, [[55, 5, 40, 70], [65, 20, 20, 60]])


def test_figures_are_pngs_of_the_runs_metrics(two_seeds, tmp_path):
    groups = group_runs(find_runs([two_seeds]))
    by_algo = {algo: runs for (_, algo), runs in groups.items()}
    drawn = learning_curve(by_algo, "pointmaze-umaze", tmp_path / "out" / "curve.png")
    data = drawn.path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    offline = drawn.series["calql/offline"]
    np.testing.assert_array_equal(offline.steps, [100, 200, 300])
    np.testing.assert_allclose(offline.mean, [15, 35, 55])
    online = drawn.series["calql/online"]
    np.testing.assert_array_equal(online.steps, [0, 200, 400, 500])
    np.testing.assert_allclose(online.mean, [55, 60, 75, 95])
    assert np.all(online.low <= online.mean) and np.all(online.mean <= online.high)
    # The lines on the figure are those series: offline panel, then online panel.
    offline_ax, online_ax = drawn.figure.axes
    np.testing.assert_array_equal(offline_ax.lines[0].get_xydata(), np.column_stack([offline.steps, offline.mean]))
    np.testing.assert_array_equal(online_ax.lines[2].get_ydata(), [60, 12.5, 30, 65])  # after axvline, Cal-QL
    assert "Cal-QL (2 seeds)" in [t.get_text() for t in offline_ax.get_legend().get_texts()]

    zoom = finetuning_zoom(by_algo, "pointmaze-umaze", tmp_path / "out" / "zoom.png")
    np.testing.assert_allclose(zoom.series["cql"].mean, [60, 12.5, 30, 65])
    reg = regret(by_algo, "pointmaze-umaze", tmp_path / "out" / "regret.png")
    np.testing.assert_array_equal(reg.series["cql"].steps, [200, 400, 500])
    np.testing.assert_allclose(reg.series["cql"].mean, [(0.9 + 0.95) / 2, (0.8 + 0.95) / 2, (0.7 + 0.85) / 2])


def test_report_tables_equal_the_summaries(two_seeds, tmp_path):
    out = tmp_path / "report"
    report = write_report(find_runs([two_seeds]), out)
    for png in (out / "figures").iterdir():
        assert png.read_bytes().startswith(PNG_SIGNATURE) and f"figures/{png.name}" in report.read_text()
    runs = {(run.algo, run.seed): run for run in find_runs([two_seeds])}
    with open(out / "seeds.csv") as file:
        for row in csv.DictReader(file):
            run = runs[row["algo"], int(row["seed"])]
            assert float(row["offline_score"]) == run.summary["offline"]["normalized_score"]  # no step-0 eval here
            assert float(row["final_score"]) == final_score(run)
            assert float(row["regret"]) == run.summary["regret"]
    with open(out / "results.csv") as file:
        results = {row["algo"]: row for row in csv.DictReader(file)}
    assert float(results["calql"]["offline_score"]) == (50 + 60) / 2
    # The mean of each seed's last three evaluations: (5 + 40 + 70) / 3 and (20 + 60) / 2.
    assert float(results["cql"]["final_score"]) == pytest.approx(((5 + 40 + 70) / 3 + (20 + 60) / 2) / 2)
    assert float(results["cql"]["regret"]) == pytest.approx((0.7 + 0.85) / 2)
    assert float(results["cql"]["regret_low"]) == 0.7 and float(results["cql"]["regret_high"]) == 0.85
    row = "| pointmaze-umaze | CQL | 2 | 60.0 [55.0, 65.0] | 39.2 [38.3, 40.0] | 0.775 [0.700, 0.850] |"
    assert row in report.read_text()
    assert "Aggregates" not in report.read_text() and "Settings differ" not in report.read_text()


def test_a_running_run_is_plotted_but_not_tabulated(tmp_path):
    make_run(tmp_path, "calql", 0, [(100, 10, -5)], [(200, 20, -5, 0.5), (500, 40, -4, 0.4)])
    make_run(tmp_path, "calql", 1, [(100, 30, -5)], [(210, 60, -5, 0.5)], finished=False)
    with open(tmp_path / "pointmaze-umaze-calql-s1" / "metrics.jsonl", "a") as file:
        file.write('{"phase": "online/tr')  # cut short by a kill
    config_path = tmp_path / "pointmaze-umaze-calql-s1" / "config.json"
    meta = json.loads(config_path.read_text())
    meta["config"].update(eval_episodes=5, resume="elsewhere")
    config_path.write_text(json.dumps(meta))
    runs = find_runs([tmp_path])
    drawn = learning_curve({"calql": runs}, "t", tmp_path / "curve.png")
    np.testing.assert_allclose(drawn.series["calql/online"].mean, [20, 40, 40, 40])  # 0, 200, 400, 500
    report = write_report(runs, tmp_path / "out").read_text()
    # final score: the mean of its (up to three) evaluations 20 and 40
    assert "| pointmaze-umaze | Cal-QL | 1 | 10.0 [10.0, 10.0] | 30.0 [30.0, 30.0] | 0.400 [0.400, 0.400] |" in report
    assert "| pointmaze-umaze | Cal-QL | 1 | running | running | running |" in report
    assert "**Settings differ between runs:** eval_episodes: 2, 5\n" in report


def test_several_tasks_get_rliable_aggregates(tmp_path):
    for task, scores in (("pointmaze-umaze", (90, 80, 70, 60)), ("pointmaze-medium", (50, 50, 40, 20))):
        for seed in (0, 1):
            for algo, score in zip(("calql", "cql"), scores[2 * seed : 2 * seed + 2]):
                make_run(tmp_path, algo, seed, [(300, 10, -5)], [(500, score, -4, 0.5)], task=task)
    report = write_report(find_runs([tmp_path]), tmp_path / "out").read_text()
    # Cal-QL final scores {90, 70, 50, 40}: IQM = mean(50, 70) = 60. P(Cal-QL > CQL): umaze
    # {90, 70} vs {80, 60}: 3 of 4 pairs; medium {50, 40} vs {50, 20}: (0.5 + 1 + 0 + 1) / 4.
    assert "| IQM of score after fine-tuning | Cal-QL | 60.0 [" in report
    assert f"| P(Cal-QL higher score after fine-tuning than CQL) | Cal-QL vs CQL | {(0.75 + 0.625) / 2:.2f} [" in report
    assert (tmp_path / "out" / "aggregates.csv").is_file()


def test_cal_ql_is_compared_with_every_other_method_across_tasks(tmp_path):
    for task in ("pointmaze-umaze", "pointmaze-medium"):
        for algo, score in (("calql", 80), ("cql", 60), ("iql", 90)):
            make_run(tmp_path, algo, 0, [(300, 10, -5)], [(500, score, -4, 0.5)], task=task)
    report = write_report(find_runs([tmp_path]), tmp_path / "out").read_text()
    assert "| P(Cal-QL higher score after fine-tuning than CQL) | Cal-QL vs CQL | 1.00 [" in report
    assert "| P(Cal-QL higher score after fine-tuning than IQL) | Cal-QL vs IQL | 0.00 [" in report
    assert "| IQM of score after fine-tuning | IQL | 90.0 [" in report


def test_statistics_by_hand():
    assert stats.iqm([4, 1, 100, 2, 3, -50, 5, 6]) == 3.5
    assert stats.probability_of_improvement([np.array([1, 3])], [np.array([2, 3])]) == (0 + 0 + 1 + 0.5) / 4
    assert stats.mean_interval([7.0]) == (7.0, 7.0, 7.0)
    assert all(math.isnan(v) for v in stats.mean_interval([math.nan]))
    mean, low, high = stats.mean_interval([0.0, 10.0, 20.0])
    assert mean == 10.0 and 0.0 <= low < mean < high <= 20.0


GOOD_CONFIG = json.dumps({"config": {**CONFIG, "algo": "cql", "seed": 0}})


@pytest.mark.parametrize(
    "files, message",
    [
        (None, "no such run directory"),
        ({}, "not a run directory (no metrics.jsonl)"),
        ({"metrics.jsonl": ""}, "not a run directory (no config.json)"),
        ({"metrics.jsonl": "", "config.json": "{}"}, "config.json: not a calql run configuration (no config)"),
        (
            {"metrics.jsonl": "", "config.json": '{"config": {"task": "t", "seed": 0}}'},
            "config.json: not a calql run configuration (no algo, online_steps, eval_every)",
        ),
        ({"metrics.jsonl": "{x\n", "config.json": GOOD_CONFIG}, "metrics.jsonl: line 1 is not valid JSON"),
    ],
)
def test_bad_run_dirs_get_one_line_errors(files, message, tmp_path, capsys):
    path = tmp_path / "run"
    if files is not None:
        path.mkdir()
        for name, text in files.items():
            (path / name).write_text(text)
    assert plot.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"calql: error: {path}") and message in err and len(err.strip().splitlines()) == 1


def test_compare_plans_both_algorithms_on_the_same_data(tmp_path):
    out, trials = compare.plan(
        [
            "--task",
            "pointmaze-umaze",
            "--seeds",
            "2",
            "--out",
            str(tmp_path),
            "--offline-steps",
            "7",
            "--agent.critic-hidden-dims",
            "16",
            "16",
        ]
    )
    configs = [trial.config for trial in trials]
    assert [(c.seed, c.algo) for c in configs] == [(0, "calql"), (0, "cql"), (1, "calql"), (1, "cql")]
    assert {(c.dataset_seed, c.dataset_size, c.offline_steps, c.agent.critic_hidden_dims) for c in configs} == {
        (0, configs[0].dataset_size, 7, (16, 16))
    }
    assert out == tmp_path and {c.run_dir for c in configs} == {str(tmp_path / "runs")}


def test_compare_runs_the_methods_named_under_their_own_names(tmp_path):
    args = ["--task", "pointmaze-umaze", "--seeds", "1", "--out", str(tmp_path), "--methods", "iql", "calql-learned"]
    _, trials = compare.plan([*args, "rlpd"])
    assert [trial.method for trial in trials] == ["iql", "calql-learned", "rlpd"]
    assert [(t.config.algo, t.config.reference, t.config.offline_steps > 0) for t in trials] == [
        ("iql", "mc", True),
        ("calql", "learned", True),
        ("rlpd", "mc", False),
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "pointmaze-umaze", "--seed", "3"], "--seed is set by compare itself"),
        (["--task", "pointmaze-umaze", "--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--task", "nope"], "--task: unknown task 'nope'"),
        (["--task", "pointmaze-umaze", "--methods", "sac"], "--methods: unknown method 'sac'; accepted: calql,"),
    ],
)
def test_compare_rejects_bad_options(args, message, capsys):
    assert compare.main(args) == 2
    assert capsys.readouterr().err.startswith(f"calql: error: {message}")


def test_compare_runs_end_to_end(tmp_path):
    """One seed of each algorithm, a few steps: the real run directories feed the report."""
    args = [
        "--task",
        "pointmaze-umaze",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--offline-steps",
        "20",
        "--offline-eval-every",
        "10",
        "--online-steps",
        "40",
        "--eval-every",
        "20",
        "--dataset-size",
        "2000",
        "--eval-episodes",
        "1",
        "--updates-per-call",
        "10",
        "--batch-size",
        "16",
        "--agent.critic-hidden-dims",
        "8",
        "--agent.policy-hidden-dims",
        "8",
    ]
    assert compare.main(args) == 0
    runs = find_runs([tmp_path / "runs"])
    assert sorted(run.algo for run in runs) == ["calql", "cql"]
    with open(tmp_path / "results.csv") as file:
        results = {row["algo"]: row for row in csv.DictReader(file)}
    for run in runs:
        assert float(results[run.algo]["final_score"]) == final_score(run)
        assert run.evals("online")[0]["step"] == 0  # the pre-trained policy, evaluated before any online step
        assert float(results[run.algo]["regret"]) == run.summary["regret"]
    assert len(list((tmp_path / "figures").glob("*.png"))) == 4
    assert load_run(runs[0].path).summary == runs[0].summary


def test_compare_again_skips_finished_runs_and_resumes_unfinished_ones(tmp_path, capsys):
    args = [
        "--task",
        "pointmaze-umaze",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--offline-steps",
        "20",
        "--online-steps",
        "40",
        "--eval-every",
        "20",
        "--dataset-size",
        "2000",
        "--eval-episodes",
        "1",
        "--updates-per-call",
        "10",
        "--batch-size",
        "16",
        "--checkpoint-every",
        "10",
        "--no-tensorboard",
        "--agent.critic-hidden-dims",
        "8",
        "--agent.policy-hidden-dims",
        "8",
    ]
    assert compare.main(args) == 0
    calql_run, cql_run = tmp_path / "runs" / "pointmaze-umaze-calql-s0", tmp_path / "runs" / "pointmaze-umaze-cql-s0"
    finished = (calql_run / "summary.json").stat().st_mtime_ns
    summary = json.loads((cql_run / "summary.json").read_text())
    (cql_run / "summary.json").unlink()  # as if killed after its last checkpoint
    capsys.readouterr()
    assert compare.main(args) == 0
    out = capsys.readouterr().out
    assert "[1/2] calql on pointmaze-umaze, seed 0: finished earlier, skipped" in out
    assert "[2/2] cql on pointmaze-umaze, seed 0, resuming" in out
    assert (calql_run / "summary.json").stat().st_mtime_ns == finished
    resumed = json.loads((cql_run / "summary.json").read_text())
    assert (resumed["offline"], resumed["final"], resumed["regret"]) == (
        summary["offline"],
        summary["final"],
        summary["regret"],
    )
    rows = [json.loads(line) for line in (cql_run / "metrics.jsonl").read_text().splitlines()]
    assert len({(row["phase"], row["step"]) for row in rows}) == len(rows)


def _synthetic_run(offline_score: float, online: list[tuple[int, float]], **config) -> RunData:
    rows = [{"phase": "offline/eval", "step": 100, "normalized_score": offline_score}]
    rows += [{"phase": "online/eval", "step": step, "normalized_score": score} for step, score in online]
    settings = {"task": "t", "algo": "calql", "seed": 0, "online_steps": 10_000, "eval_every": 500, **config}
    return RunData(Path("x"), settings, rows, None)


def test_finetuning_dip_is_the_drop_within_the_first_fifth_from_the_step_0_score():
    # Evaluations due at 500 ... 2000 (taken at the end of the episodes past them) are in the 20% window.
    run = _synthetic_run(70.0, [(0, 80.0), (530, 60.0), (1040, 50.0), (2010, 40.0), (2510, 10.0), (10_000, 90.0)])
    assert finetuning_dip(run) == 40.0  # 80 at step 0, lowest 40 in the window; 10 at 2510 is after it
    assert start_score(run) == 80.0
    assert finetuning_dip(_synthetic_run(80.0, [(0, 80.0), (530, 85.0), (1040, 90.0)])) == 0.0
    assert np.isnan(finetuning_dip(_synthetic_run(80.0, [(0, 80.0), (2510, 10.0)])))


def test_runs_without_a_step_0_evaluation_start_from_the_last_offline_one():
    run = _synthetic_run(80.0, [(530, 60.0), (1040, 50.0)])
    assert start_score(run) == 80.0 and finetuning_dip(run) == 30.0


def test_final_score_is_the_mean_of_the_last_three_evaluations():
    run = _synthetic_run(0.0, [(0, 100.0), (500, 0.0), (1000, 30.0), (1500, 60.0), (2000, 90.0)])
    assert final_score(run) == 60.0
    assert final_score(_synthetic_run(0.0, [(0, 100.0), (500, 40.0)])) == 40.0  # fewer than three: all past 0
    assert np.isnan(final_score(_synthetic_run(0.0, [(0, 100.0)])))


def test_online_evaluation_grid_has_step_0_dense_start_and_regular_steps():
    assert online_eval_steps(1000, 400, start_evals=4, start_eval_fraction=0.2) == [
        0,
        50,
        100,
        150,
        200,
        400,
        800,
        1000,
    ]
    assert online_eval_steps(1000, 400) == [0, 400, 800, 1000]
    assert online_eval_steps(0, 400, 4) == []


def test_method_label_tells_the_learned_reference_apart():
    assert _synthetic_run(0.0, [], reference="learned").algo == "calql-learned"
    assert _synthetic_run(0.0, [], reference="mc").algo == "calql"
    assert _synthetic_run(0.0, [], algo="cql", reference="learned").algo == "cql"
    assert _synthetic_run(0.0, []).algo == "calql"  # run directories written before --reference existed


def test_two_sample_intervals_of_the_claims():
    from calql.reporting.stats import difference_interval, ratio_interval

    assert difference_interval([3.0, 3.0], [1.0, 1.0, 1.0]) == (2.0, 2.0, 2.0)
    assert ratio_interval([1.0, 1.0], [4.0, 4.0]) == (0.25, 0.25, 0.25)
    mean, low, high = difference_interval([0.0, 10.0, 20.0], [0.0, 0.0, 0.0])
    assert mean == 10.0 and 0.0 <= low < mean < high <= 20.0
    assert all(np.isnan(ratio_interval([1.0], [0.0, 0.0])))
    # A denominator whose resamples are often 0 leaves the ratio unbounded above, not narrowed.
    mean, low, high = ratio_interval([0.0, 0.0, 0.0], [0.0, 0.0, 0.1])
    assert mean == 0.0 and low == 0.0 and high == np.inf
