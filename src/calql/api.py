"""The Python API: what `calql train` and `calql eval` do, as functions.

    import calql

    config = calql.config_for("pointmaze-umaze", offline_steps=20_000, agent={"critic_hidden_dims": (128, 128)})
    result = calql.train(config)                  # pre-train offline, fine-tune online
    policy = calql.load_agent(result.run_dir)     # .act(observation) -> action, .make_env()
    print(calql.evaluate(result.run_dir, episodes=50).success)

Options have the names of TrainConfig's fields (`calql train --help` spells them with dashes:
offline_steps is --offline-steps); errors name them the command line's way, so both speak the same.
"""

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from calql.config import TrainConfig, algo_defaults, validate, with_overrides
from calql.envs.tasks import default_config
from calql.evaluation import Evaluation, Policy, evaluate_run, load_policy
from calql.training import loop
from calql.training.loop import RunResult

Report = Callable[[dict], None]
"""Called with each evaluation's metrics row (phase, step, success, normalized_score, ...)."""


def config_for(task: str, preset: str | None = None, **overrides) -> TrainConfig:
    """The configuration of a run on `task`: the task's preset (or the preset named, see
    calql.PRESETS) with `overrides` applied, then validated.

    Overrides are TrainConfig fields by name (offline_steps=5000, algo="cql"); agent options go in
    a dict, agent={"critic_hidden_dims": (64, 64), "cql_alpha": 1.0}, or as a whole AgentConfig.
    An unknown name or a value of the wrong type raises calql.ConfigError naming the option as
    the command line does (--offline-steps), as does a value `calql train` would refuse.
    algo="rlpd" puts RLPD's settings (config.rlpd_settings) between the preset and the overrides."""
    return validate(with_overrides(algo_defaults(default_config(task, preset), overrides.get("algo")), overrides))


def _silent(row: dict) -> None:
    pass


def train(config: TrainConfig, report: Report | None = None, console: Console | None = None) -> RunResult:
    """Pre-train offline, then fine-tune online (or, with config.resume, continue a run) and
    return the summary (resuming a finished run returns its summary.json and changes nothing;
    a resumed run's wall time and timers add up all of its processes). The run directory is
    config.run_dir/config.run_name (by default runs/TASK-ALGO-sSEED-TIME); progress bars
    go to `console` (a rich Console; a new one by default)."""
    return loop.train(config, report=report or _silent, console=console)


def train_seeds(
    config: TrainConfig, seeds: list[int], report: Report | None = None, console: Console | None = None
) -> list[RunResult]:
    """Several independent seeds of config trained in one process with one vmapped update; one
    run directory and RunResult per seed."""
    return loop.train_seeds(config, list(seeds), report=report or _silent, console=console)


def evaluate(run_dir: str | Path, episodes: int = 20, seed: int = 12345, video: str | Path | None = None) -> Evaluation:
    """`calql eval`: deterministic episodes of a run's newest checkpoint (or of RUN_DIR/checkpoints/STEP);
    mean return, normalized score and success, each with its 95% bootstrap interval."""
    return evaluate_run(run_dir, episodes, seed, video)


def load_agent(run_dir: str | Path) -> Policy:
    """The trained policy of a run's newest checkpoint (or of RUN_DIR/checkpoints/STEP):
    policy.act(observation) -> numpy action; policy.make_env(seed) -> its task's environment."""
    return load_policy(run_dir)
