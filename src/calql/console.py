"""What a run prints on a console: one line per evaluation and the final table (`calql train`,
and the log of each sweep trial)."""

import math

from rich.console import Console
from rich.table import Table

from calql.config import TrainConfig


def print_summary(result, config: TrainConfig, console: Console) -> None:
    """The final table of a run (a training.run.RunResult) and its regret, wall time and folder."""
    table = Table(title=f"{config.algo} on {config.task} (seed {config.seed})")
    for column in ("", "success rate", "normalized score"):
        table.add_column(column, justify="right")
    table.add_row(
        "after offline pre-training", f"{result.offline['success']:.2f}", f"{result.offline['normalized_score']:.1f}"
    )
    table.add_row(
        "after online fine-tuning", f"{result.final['success']:.2f}", f"{result.final['normalized_score']:.1f}"
    )
    console.print(table)
    console.print(
        f"cumulative regret: {regret_text(result.regret)}   wall time: {result.wall_time:.0f} s   "
        f"run directory: {result.run_dir}"
    )


def regret_text(regret: float | None) -> str:
    """A summary's regret for a person: "n/a (no online episodes)" when there is none (null, or NaN
    in older summaries)."""
    return "n/a (no online episodes)" if regret is None or math.isnan(regret) else f"{regret:.3f}"


def report_line(console: Console):
    """One printed line per evaluation (the `report` callback of calql.train)."""

    def report(row: dict) -> None:
        extra = f"  regret {row['cumulative_regret']:.3f}" if "cumulative_regret" in row else ""
        console.print(
            f"[seed {row['seed']} {row['phase']} step {row['step']}] success {row['success']:.2f}  "
            f"score {row['normalized_score']:.1f}  "
            f"Q(s,a) {row['calibration/q_data']:.1f} vs MC return {row['calibration/mc_return']:.1f} "
            f"({100 * row['calibration/q_below_return']:.0f}% below){extra}",
            markup=False,
            soft_wrap=True,
        )

    return report
