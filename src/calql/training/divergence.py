"""Divergence: a training record whose losses, or an agent whose parameters, are no longer finite
stops the run before anything is written from them, naming the last good checkpoint."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from calql.agent.state import AgentState, IQLAgentState
from calql.errors import CalqlError
from calql.rundir import CHECKPOINT_FOLDER, OFFLINE

WATCHED = ("critic/td_loss", "critic/loss", "actor/loss", "value/loss")
"""The training metrics that turn NaN or infinite when a run diverges."""


class TrainingDiverged(CalqlError):
    """A run's losses or parameters became NaN or infinite."""


@jax.jit
def parameters_finite(state: AgentState) -> jax.Array:
    """Whether every learned parameter (both networks, the target critic, both multipliers, IQL's
    value network) is finite."""
    trees = (
        state.actor.params,
        state.critic.params,
        state.target_critic_params,
        state.log_temperature.params,
        state.log_lagrange.params,
        state.value.params if isinstance(state, IQLAgentState) else None,
    )
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(trees)]))


def check_finite(state: AgentState, metrics: dict, where: str, checkpoints: object, run_dir: Path) -> None:
    """TrainingDiverged naming `where` (e.g. 'offline gradient step 300'), what turned non-finite and
    the last good checkpoint, if a watched metric or a parameter is not finite."""
    bad = next((key for key in WATCHED if key in metrics and not np.isfinite(metrics[key])), None)
    if bad is not None:
        what = f"{bad} is {metrics[bad]}"
    elif not bool(parameters_finite(state)):
        what = "the parameters are no longer finite"
    else:
        return
    raise TrainingDiverged(
        f"training diverged at {where}: {what}; {_last_good(checkpoints, run_dir)}; start a new run with a "
        "lower --agent.critic-lr / --agent.policy-lr (or a smaller --agent.cql-alpha)"
    )


def where_in_training(phase: str, step: int) -> str:
    """'offline gradient step 300' or 'online env step 1200' for a training row of `phase`."""
    return f"offline gradient step {step}" if phase.startswith(OFFLINE) else f"online env step {step}"


def _last_good(checkpoints, run_dir: Path) -> str:
    steps = checkpoints.all_steps()
    if not steps:
        return "no checkpoint was written before it"
    return f"the last good checkpoint is {Path(run_dir) / CHECKPOINT_FOLDER / str(max(steps))}"
