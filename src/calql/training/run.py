"""The state of one seed's run: where it is (Counters), what it holds (Run: agent, data, RNGs,
environments, online buffer, log, checkpoints), its online half, and the summary it ends with."""

import contextlib
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import cast

import gymnasium as gym
import jax
import numpy as np
from gymnasium.envs.registration import EnvSpec
from rich.console import Console

from calql.agent.state import AgentState
from calql.config import TrainConfig
from calql.data.replay import FrameBuffer, OnlineBuffer, new_buffer, offline_transitions
from calql.data.returns import trajectory_ends, transform_rewards
from calql.data.transitions import Transitions
from calql.envs.tasks import Task
from calql.rundir import SUMMARY_FILE
from calql.training.metrics import RunLog
from calql.training.watch import LagrangeWatch


@dataclasses.dataclass
class Counters:
    """Where the run is; saved in every checkpoint (JSON)."""

    offline_done: int = 0
    online_done: int = 0
    next_eval: int = 0
    gradient_steps: int = 0
    online_successes: list[bool] = dataclasses.field(default_factory=list)
    offline_result: dict | None = None
    final_result: dict | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Run:
    """Mutable bookkeeping of one seed's run (the learner itself is the immutable AgentState)."""

    config: TrainConfig
    task: Task
    state: AgentState
    offline: Transitions
    """The offline data; its `reference` is the learned value under --reference learned."""
    log: RunLog
    rng: np.random.Generator
    act_key: jax.Array
    calibration_batch: Transitions
    """Fixed offline rows for the calibration diagnostic, with their true Monte-Carlo returns."""
    eval_env: gym.Env
    console: Console
    report: Callable[[dict], None]
    checkpoints: object
    counters: Counters = dataclasses.field(default_factory=Counters)
    env: gym.Env | None = None
    buffer: OnlineBuffer | FrameBuffer | None = None
    timers: dict[str, float] = dataclasses.field(default_factory=lambda: defaultdict(float))
    lagrange_watch: LagrangeWatch | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)
    """When this process began the run (loop.train sets it before the run is opened)."""
    earlier_wall_time: float = 0.0
    """Seconds the run's earlier processes spent, up to the checkpoint this one resumed from."""
    eval_copies: list[gym.Env] = dataclasses.field(default_factory=list)
    """--eval-lockstep: one environment per evaluation episode, made at the first evaluation."""
    update_lanes: int = 1
    """Seeds in the vmapped update the run was started with (--seeds): a seed resumed alone is
    updated in as many lanes (the others idle), so its numbers match the uninterrupted group's."""

    def wall_time(self) -> float:
        """Seconds over all of the run's processes so far."""
        return self.earlier_wall_time + time.perf_counter() - self.started


@dataclasses.dataclass
class RunResult:
    run_dir: str
    offline: dict
    final: dict
    regret: float | None
    """The mean of (1 - success) over the online episodes; None (null in summary.json) without any."""
    wall_time: float
    timers: dict[str, float]
    warnings: list[str] = dataclasses.field(default_factory=list)


class Timer:
    """Adds the seconds spent inside `with` to timers[name]."""

    def __init__(self, timers: dict, name: str):
        self.timers, self.name = timers, name

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timers[self.name] += time.perf_counter() - self.start


def load_offline_data(task: Task, config: TrainConfig) -> tuple[Transitions, np.ndarray]:
    """The task's dataset with the reward transform applied first, then MC returns; and the (N,)
    trajectory ends the returns were computed with (--reference best ranks trajectories)."""
    raw = task.load_dataset(config.dataset_size, config.dataset_seed)
    rewards = transform_rewards(raw["rewards"], task.reward_scale, task.reward_bias)
    ends = trajectory_ends(raw["terminals"], raw["timeouts"], raw["observations"], raw["next_observations"])
    offline = offline_transitions(
        raw["observations"],
        raw["actions"],
        rewards,
        raw["next_observations"],
        raw["terminals"],
        raw["timeouts"],
        task.return_rule(config.agent.discount),
        ends,
        stack=task.frame_stack,
    )
    return offline, ends


def start_online(run: Run) -> None:
    """The training environment and an empty online buffer; CORL mode drops the calibration."""
    cfg = run.config
    if not cfg.calibrate_online:
        run.state = run.state.replace(calibrate=False)
    run.env = env = run.task.make_env(cfg.seed)
    env.reset(seed=cfg.seed)
    # Every task's environment has a time limit, so the last episode always fits.
    capacity = cfg.online_steps + cast(int, cast(EnvSpec, env.spec).max_episode_steps)
    run.buffer = new_buffer(capacity, run.offline)


def matmul_precision(config: TrainConfig) -> contextlib.AbstractContextManager:
    """The run's --matmul-precision for every compiled call inside `with`."""
    precision = config.matmul_precision
    return jax.default_matmul_precision(None if precision == "default" else precision)


def finish(run: Run) -> RunResult:
    """Write the run's summary.json (its final results, regret, time and warnings) and close it."""
    counters = run.counters
    final = counters.final_result or counters.offline_result
    regret = 1.0 - float(np.mean(counters.online_successes)) if counters.online_successes else None
    result = RunResult(
        str(run.log.path),
        cast(dict, counters.offline_result),  # the offline phase always leaves one (end_offline_phase)
        cast(dict, final),
        regret,
        run.wall_time(),
        dict(run.timers),
        list(counters.warnings),
    )
    run.log.write_summary(dataclasses.asdict(result))
    close(run)
    return result


def stored_result(run_dir: str | Path) -> RunResult:
    """The RunResult a finished run wrote to its summary.json."""
    summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    return RunResult(**{field.name: summary[field.name] for field in dataclasses.fields(RunResult)})


def close(run: Run) -> None:
    """Close the run's log and checkpoints (a run that stops early keeps them as they are)."""
    run.log.close()
    run.checkpoints.close()  # type: ignore[attr-defined]
