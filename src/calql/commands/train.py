"""`calql train [options]`: pre-train offline, then fine-tune online (Cal-QL or CQL), printing
one line per evaluation and a final table; `--resume RUN_DIR` continues a run."""

import dataclasses
import signal

from rich.console import Console

from calql.console import print_summary, report_line
from calql.options import parse_train_args
from calql.rundir import is_finished


def _interrupt_on_sigterm(signum, frame) -> None:
    """SIGTERM (a scheduler or `kill`) stops a run like Ctrl-C: cleanly, in one line."""
    raise KeyboardInterrupt


def main(args: list[str]) -> int:
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        return _train(args)
    finally:
        signal.signal(signal.SIGTERM, previous)  # callers in the same process keep their own handler


def _train(args: list[str]) -> int:
    config = parse_train_args(args)
    from calql import api  # imported after parsing: JAX loads in seconds, `calql train --help` need not wait

    console = Console()
    if config.seeds:
        results = api.train_seeds(config, list(config.seeds), report=report_line(console), console=console)
        for seed, result in zip(config.seeds, results):
            print_summary(result, dataclasses.replace(config, seed=seed), console)
        return 0
    finished = bool(config.resume) and is_finished(config.resume)
    result = api.train(config, report=report_line(console), console=console)
    if finished:  # api.train checked the options and changed nothing
        print(f"{config.resume} is finished (it has a summary.json): nothing to resume, nothing changed")
    else:
        print_summary(result, config, console)
    return 0
