"""Live progress of each phase: a rich progress bar in a terminal, plain periodic lines
otherwise (CI, log files)."""

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

KEY_METRICS = {
    "critic/td_loss": "td_loss",
    "critic/cql_gap": "cql_gap",
    "critic/cql_multiplier": "alpha'",  # only with the Lagrange version of CQL
    "critic/bound_rate": "bound_rate",
    "value/loss": "value_loss",  # only IQL
    "actor/advantage": "advantage",  # only IQL
    "actor/entropy": "entropy",
}


def _summary(metrics: dict) -> str:
    shown = [f"{label} {metrics[key]:.3g}" for key, label in KEY_METRICS.items() if key in metrics]
    return "  ".join(shown)


class PhaseProgress:
    """Progress of one phase ('offline gradient steps' or 'online env steps')."""

    def __init__(self, console: Console, label: str, total: int, done: int = 0, plain_every_s: float = 30.0):
        self.console, self.label, self.total = console, label, total
        self.done, self.start, self.start_done = done, time.perf_counter(), done
        self.plain_every_s, self.last_plain = plain_every_s, self.start
        self.bar = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=console,
                transient=False,
            )
            self.task = self.bar.add_task(label, total=total, completed=done, rate="", metrics="")
            self.bar.start()

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def update(self, done: int, metrics: dict) -> None:
        self.done = done
        if self.bar is not None:
            self.bar.update(
                self.task, completed=min(done, self.total), rate=f"{self.rate:.0f}/s", metrics=_summary(metrics)
            )
        elif time.perf_counter() - self.last_plain >= self.plain_every_s or done >= self.total:
            self.last_plain = time.perf_counter()
            remaining = max(self.total - done, 0) / self.rate if self.rate > 0 else float("nan")
            self.console.print(
                f"{self.label}: {done}/{self.total}  {self.rate:.0f}/s  eta {remaining:.0f} s  {_summary(metrics)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
