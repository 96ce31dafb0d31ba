"""Checkpoints of the whole training state with orbax-checkpoint.

One checkpoint = the agent pytree (networks, optimiser states, targets, RNG key), the online
buffer's filled rows, and a JSON record (counters, host RNG states, environment RNG states,
the metrics-log position, the configuration). orbax writes each one into a temporary folder
and renames it when complete, so a kill mid-write never leaves a half checkpoint as the
newest; the last `keep` are kept, and a newest one that cannot be read falls back to the
one before it with a warning.
"""

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import orbax.checkpoint as ocp

from calql.agent.state import AgentState
from calql.envs.common import env_stack
from calql.errors import CalqlError

CHECKPOINT_FOLDER = "checkpoints"

# orbax logs every save at INFO level; a training run's output should stay readable.
logging.getLogger("absl").setLevel(logging.WARNING)


class CheckpointError(CalqlError):
    """No usable checkpoint, or one from an incompatible configuration."""


def manager(run_dir: Path, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
    return ocp.CheckpointManager(Path(run_dir).absolute() / CHECKPOINT_FOLDER, options=options)


def save(mgr: ocp.CheckpointManager, step: int, agent: AgentState, buffer: dict[str, np.ndarray], meta: dict) -> None:
    """Write checkpoint `step` (a strictly increasing counter) synchronously and atomically."""
    if step in mgr.all_steps():
        return
    mgr.save(
        step,
        args=ocp.args.Composite(
            agent=ocp.args.StandardSave(agent),
            buffer=ocp.args.StandardSave(buffer),
            meta=ocp.args.JsonSave(meta),
        ),
    )
    mgr.wait_until_finished()


def restore_latest(
    mgr: ocp.CheckpointManager, agent_template: AgentState, step: int | None = None
) -> tuple[AgentState, dict, dict] | None:
    """(agent, buffer, meta) of the newest readable checkpoint (or of `step` only), or None."""
    for step in [step] if step is not None else sorted(mgr.all_steps(), reverse=True):
        try:
            restored = mgr.restore(
                step,
                args=ocp.args.Composite(
                    agent=ocp.args.StandardRestore(agent_template),
                    buffer=ocp.args.StandardRestore(),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except Exception as error:  # a corrupt or truncated checkpoint: fall back to the previous one
            warnings.warn(f"checkpoint {step} in {mgr.directory} is unreadable ({type(error).__name__}); "
                          "falling back to the previous one", stacklevel=2)
            continue
        return restored["agent"], dict(restored["buffer"]), dict(restored["meta"])
    return None


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


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
