"""Checkpoints of a run with orbax-checkpoint, and the checks that a resume continues the same run.

One checkpoint = the agent pytree (networks, optimiser states, targets, RNG key), the online
buffer's filled rows, and a JSON record (counters, host RNG states, environment RNG states,
the metrics-log position, the configuration's fingerprint). orbax writes each one into a
temporary folder and renames it when complete, so a kill mid-write never leaves a half
checkpoint as the newest; the last `keep` are kept, and a newest one that cannot be read falls
back to the one before it with a warning. A resume is refused when its options differ from the
run's (config.json) or from those its checkpoint was written with.
"""

import contextlib
import dataclasses
import io
import json
import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import jax
import numpy as np
import orbax.checkpoint as ocp

from calql.agent.state import AgentState
from calql.config import TrainConfig, config_from_dict, differences, unread_options
from calql.envs.common import env_stack
from calql.errors import CalqlError, storage_error
from calql.rundir import CHECKPOINT_FOLDER
from calql.training.metrics import read_config
from calql.training.run import Counters, Run, Timer, start_online

TEMPORARY_SUFFIX = ".orbax-checkpoint-tmp"
"""orbax's suffix for a checkpoint folder still being written."""
WHERE_IT_RUNS = ("run_dir", "run_name", "resume")
"""Options a resume may change: where the run directory is, not what the run does."""

# orbax logs every save at INFO level; a training run's output should stay readable.
logging.getLogger("absl").setLevel(logging.WARNING)


class CheckpointError(CalqlError):
    """No usable checkpoint, or one from an incompatible configuration."""


class NoReadableCheckpoint(CheckpointError):
    """A resume whose run directory holds no checkpoint that can be read (a sweep restarts such a
    trial from scratch: sweep/trial.py)."""


def manager(run_dir: Path, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
    return ocp.CheckpointManager(Path(run_dir).absolute() / CHECKPOINT_FOLDER, options=options)


def save(mgr: ocp.CheckpointManager, step: int, agent: AgentState, buffer: dict[str, np.ndarray], meta: dict) -> None:
    """Write checkpoint `step` (a strictly increasing counter) synchronously and atomically. A
    write that fails (disk full, read-only) leaves no temporary folder and raises StorageError."""
    if step in mgr.all_steps():
        return
    held_back = io.StringIO()
    try:
        with _orbax_held_back(held_back):
            mgr.save(
                step,
                args=ocp.args.Composite(
                    agent=ocp.args.StandardSave(agent),
                    buffer=ocp.args.StandardSave(buffer),
                    meta=ocp.args.JsonSave(meta),
                ),
            )
            mgr.wait_until_finished()
        sys.stderr.write(held_back.getvalue())
    except Exception as error:
        remove_unfinished(Path(mgr.directory))
        fault = storage_error(error, f"{mgr.directory}: cannot write checkpoint {step}")
        if fault is None:
            raise
        raise fault from None


@contextlib.contextmanager
def _orbax_held_back(held_back: io.StringIO) -> Iterator[None]:
    """When a write fails, orbax's threads print dozens of tracebacks (to stderr and through
    absl's logger); hold them back so the failure is reported as one line by `save`."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(held_back):
            yield
    finally:
        absl.setLevel(level)


def remove_unfinished(folder: Path) -> None:
    """Delete the temporary folders of checkpoint writes that never completed (orbax renames a
    checkpoint's folder only once it is whole, so these hold nothing a resume could use)."""
    for partial in folder.glob(f"*{TEMPORARY_SUFFIX}*"):
        shutil.rmtree(partial, ignore_errors=True)


def restore_latest(
    mgr: ocp.CheckpointManager, agent_template: AgentState, step: int | None = None
) -> tuple[AgentState, dict, dict] | None:
    """(agent, buffer, meta) of the newest readable checkpoint (or of `step` only), or None."""
    for candidate in [step] if step is not None else sorted(mgr.all_steps(), reverse=True):
        try:
            restored = mgr.restore(
                candidate,
                args=ocp.args.Composite(
                    agent=ocp.args.StandardRestore(agent_template),
                    buffer=ocp.args.StandardRestore(),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except Exception as error:  # a corrupt or truncated checkpoint: fall back to the previous one
            # One line on stderr (not a Python warning with a source path): the run goes on.
            print(
                f"calql: warning: checkpoint {candidate} in {mgr.directory} is unreadable "
                f"({type(error).__name__}); falling back to the previous one",
                file=sys.stderr,
            )
            continue
        return restored["agent"], dict(restored["buffer"]), dict(restored["meta"])
    return None


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    return cast(dict[str, Any], rng.bit_generator.state)


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def env_rng_states(env: gym.Env) -> list[dict]:
    """RNG states of an environment stack: at an episode boundary, all its future depends on."""
    return [generator_state(e.np_random) for e in env_stack(env)]


def set_env_rng_states(env: gym.Env, states: list[dict]) -> None:
    for e, state in zip(env_stack(env), states, strict=True):
        e.np_random = generator_from_state(state)


def config_fingerprint(config_dict: dict) -> str:
    """The configuration fields that must match for a resume (everything but where it runs)."""
    relevant = {k: v for k, v in config_dict.items() if k not in ("run_dir", "resume")}
    return json.dumps(relevant, sort_keys=True, default=str)


def save_run(run: Run) -> None:
    """Checkpoint `run` (numbered by `checkpoint_number`): everything its future depends on."""
    with Timer(run.timers, "checkpoint"):
        buffer = run.buffer
        arrays = {"size": np.asarray(0 if buffer is None else buffer.size)}
        if buffer is not None and buffer.size:
            arrays.update(buffer.arrays())
        meta = {
            "config": config_fingerprint(dataclasses.asdict(run.config)),
            "counters": dataclasses.asdict(run.counters),
            "rng": generator_state(run.rng),
            "act_key": np.asarray(run.act_key).tolist(),
            "eval_env_rng": env_rng_states(run.eval_env),
            "env_rng": None if run.env is None else env_rng_states(run.env),
            "log_lines": run.log.lines,
            "wall_time": run.wall_time(),
            "timers": dict(run.timers),
            "log_step": run.log.timeline(
                "online" if run.env else "offline", run.counters.online_done if run.env else run.counters.offline_done
            ),
        }
        save(run.checkpoints, checkpoint_number(run), run.state, arrays, meta)


def checkpoint_number(run: Run) -> int:
    """The number of the run's checkpoint now, strictly increasing: its gradient steps; with a
    warm-up also its online steps, since the warm-up's episodes take no gradient step (numbering
    by gradient steps alone would give them the number of the checkpoint before and skip them)."""
    counters = run.counters
    return counters.gradient_steps + (counters.online_done if run.config.warmup_steps else 0)


def restore_run(run: Run, restored: tuple[AgentState, dict, dict]) -> None:
    """Put a freshly opened run back exactly where a checkpoint (restore_latest's triple) left it."""
    agent, arrays, meta = restored
    run.state = agent
    run.counters = Counters(**meta["counters"])
    run.earlier_wall_time = meta.get("wall_time", 0.0)  # older checkpoints did not keep time
    for name, seconds in meta.get("timers", {}).items():
        run.timers[name] += seconds
    run.rng = generator_from_state(meta["rng"])
    run.act_key = jax.numpy.asarray(np.asarray(meta["act_key"], np.uint32))
    set_env_rng_states(run.eval_env, meta["eval_env_rng"])
    if meta["env_rng"] is not None:
        start_online(run)
        assert run.env is not None and run.buffer is not None  # start_online made them
        set_env_rng_states(run.env, meta["env_rng"])
        if int(arrays["size"]):
            run.buffer.restore(arrays)


def check_resume_options(config: TrainConfig) -> None:
    """Refuse a resume whose options differ from those the run directory (config.json) started with."""
    saved = config_from_dict(read_config(Path(config.resume)))
    changed = differences(saved, config, ignore=WHERE_IT_RUNS + unread_options(config.algo))
    if changed:
        raise CheckpointError(
            f"--resume {config.resume}: options differ from the run's ({'; '.join(changed)}); "
            "resume with the same options or start a new run"
        )


def check_fingerprint(meta: dict, config: TrainConfig, folder: Path) -> None:
    """Refuse a checkpoint written with other options than the run's (one copied from another run)."""
    saved = config_from_dict(json.loads(meta["config"]))
    changed = differences(saved, config, ignore=WHERE_IT_RUNS + unread_options(config.algo))
    if changed:
        raise CheckpointError(
            f"--resume {config.resume}: checkpoint {folder} was written by a run with other options "
            f"({'; '.join(changed)}); put back this run's own checkpoints or start a new run"
        )


def _saved_meta(mgr: ocp.CheckpointManager, step: int) -> dict | None:
    """The JSON record of checkpoint `step` alone, or None if it cannot be read."""
    try:
        return dict(mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
    except Exception:  # unreadable: restore_latest warns and falls back
        return None


def restore_for_resume(
    mgr: ocp.CheckpointManager, agent_template: AgentState, config: TrainConfig
) -> tuple[AgentState, dict, dict] | None:
    """(agent, buffer, meta) of the run's newest readable checkpoint, each one's options checked
    before its arrays are read (a copied checkpoint may not even fit the agent's shapes); None
    when the run never completed a checkpoint (it starts again from the beginning)."""
    folder = Path(config.resume) / CHECKPOINT_FOLDER
    steps = sorted(mgr.all_steps(), reverse=True)
    if not steps:  # stopped before its first checkpoint was complete: the run starts again
        remove_unfinished(folder)
        return None
    for step in steps:
        meta = _saved_meta(mgr, step)
        if meta is not None:
            check_fingerprint(meta, config, folder / str(step))
        restored = restore_latest(mgr, agent_template, step)
        if restored is not None:
            return restored
    raise NoReadableCheckpoint(f"--resume {config.resume}: no readable checkpoint in {folder}; start a new run")
