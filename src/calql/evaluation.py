"""A trained policy restored from a run directory's checkpoint, and its evaluation: mean return,
normalized score and success rate with 95% bootstrap confidence intervals over episodes."""

import dataclasses
import importlib.util
from pathlib import Path
from typing import NamedTuple, cast

import jax
import numpy as np

from calql.agent.acting import deterministic_action, sample_action
from calql.agent.state import AgentState, new_agent
from calql.config import TrainConfig, config_from_dict
from calql.data.observations import is_image_space
from calql.envs.binding import bind
from calql.envs.common import env_stack, flat_width
from calql.envs.tasks import Task, get_task
from calql.errors import CalqlError, storage_error
from calql.reporting.stats import mean_interval
from calql.rundir import CONFIG_FILE
from calql.training import checkpoint
from calql.training.metrics import read_config
from calql.training.rollout import Episode, run_episode


@dataclasses.dataclass(frozen=True)
class Policy:
    """A trained actor with the configuration and task it was trained on."""

    config: TrainConfig
    task: Task
    """The task, bound to the run's dataset (its environment matches the data's observations)."""
    agent: AgentState

    def act(self, observation, deterministic: bool = True, key: jax.Array | None = None) -> np.ndarray:
        """The action for an observation (O,) -> (A,), or a batch (N, O) -> (N, A), within the
        action space [-1, 1]: tanh of the policy mean, or with deterministic=False a sample
        from the policy, drawn with `key` (a jax.random.PRNGKey)."""
        observation = np.asarray(observation, np.float32)
        if deterministic:
            return np.asarray(deterministic_action(self.agent.actor, observation))
        if key is None:
            raise CalqlError("Policy.act: deterministic=False needs key=jax.random.PRNGKey(seed)")
        return np.asarray(sample_action(self.agent.actor, observation, key)[0])

    def make_env(self, seed: int | None = None):
        """A new environment of the policy's task (gymnasium API; reset it before stepping)."""
        return self.task.make_env(seed)


class Estimate(NamedTuple):
    """A mean over episodes and its 95% bootstrap confidence interval."""

    mean: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """calql eval's numbers: per-episode means with 95% bootstrap intervals."""

    task: str
    algo: str
    episodes: int
    returns: Estimate
    """Undiscounted episode return."""
    normalized_score: Estimate
    success: Estimate


def _estimate(values: np.ndarray) -> Estimate:
    """The mean over episodes and its interval, by the same bootstrap as every report (reporting.stats)."""
    return Estimate(*mean_interval(values))


def _locate(path: Path) -> tuple[Path, int | None]:
    """(run directory, checkpoint step or None for the newest) from a run dir or a checkpoint dir."""
    if (path / CONFIG_FILE).is_file():
        return path, None
    if path.name.isdigit() and (path.parent.parent / CONFIG_FILE).is_file():
        return path.parent.parent, int(path.name)
    raise CalqlError(f"{path}: neither a run directory (with config.json) nor a checkpoint (RUN_DIR/checkpoints/STEP)")


def load_policy(path: str | Path) -> Policy:
    """The policy of a run directory's newest checkpoint, or of RUN_DIR/checkpoints/STEP."""
    run_dir, step = _locate(Path(path))
    config = config_from_dict(read_config(run_dir))
    task = bind(get_task(config.task), config.dataset, config.filter_dataset)
    probe = task.make_env(config.seed)
    template = new_agent(
        config.algo,
        jax.random.PRNGKey(0),
        agent_input_of(probe.observation_space),
        flat_width(probe.action_space),
        config.agent,
    )
    probe.close()
    mgr = checkpoint.manager(run_dir, config.keep_checkpoints)
    restored = checkpoint.restore_latest(mgr, template, step)
    mgr.close()
    if restored is None:
        raise CalqlError(
            f"{run_dir}: no readable checkpoint{'' if step is None else f' {step}'}; "
            "was the run started with calql >= 0.1 and did it save one?"
        )
    return Policy(config, task, restored[0])


def _enable_rgb_rendering(env) -> None:
    """Turn on rgb_array rendering of an env built without a render mode (and of the env it wraps)."""
    for inner in env_stack(env):
        inner.render_mode = "rgb_array"


def agent_input_of(space) -> int | tuple[int, ...]:
    """The agent an environment's observations need: a vector's width, or an image's (H, W, C)."""
    return tuple(space.shape) if is_image_space(space) else flat_width(space)


def _video_frame(env, observation) -> np.ndarray:
    """The frame a video shows: the observation itself on pixel tasks (its newest frame where frames are
    stacked, enlarged 8x), else MuJoCo's rendering."""
    if is_image_space(env.observation_space):
        try:
            stacked = env.get_wrapper_attr("frames_per_observation")  # calql.envs.common.StackFrames
        except AttributeError:
            stacked = 1
        channels = env.observation_space.shape[-1] // stacked
        return np.repeat(np.repeat(observation[..., -channels:], 8, axis=0), 8, axis=1)
    return env.unwrapped.render()


def _run_episodes(env, policy: Policy, episodes: int, frames: list | None) -> list[Episode]:
    """Deterministic episodes; with a frames list, each step's rendered frame is appended to it."""

    def act(observation):
        if frames is not None:
            frames.append(_video_frame(env, observation))
        return policy.act(observation)

    return [run_episode(env, act, score_key=policy.task.score_reward_info) for _ in range(episodes)]


VIDEO_FORMATS = {".gif": None, ".mp4": "imageio_ffmpeg"}
"""The video files `--video` writes, and the module each needs beyond the base install."""


def check_video_path(video: Path) -> None:
    """Refuse, before any episode runs, a video file that could not be written or would
    overwrite one the user has."""
    if video.suffix.lower() not in VIDEO_FORMATS:
        raise CalqlError(f"--video {video}: unknown format {video.suffix!r}; give a .gif or .mp4 file")
    needed = VIDEO_FORMATS[video.suffix.lower()]
    if needed is not None and importlib.util.find_spec(needed) is None:
        raise CalqlError(f'--video {video}: .mp4 needs ffmpeg: pip install "calql[video]" (or write a .gif)')
    if video.exists():
        raise CalqlError(f"--video {video}: the file exists; choose another name or move it away")
    if not video.parent.is_dir():
        raise CalqlError(f"--video {video}: no folder {video.parent}; create it or choose another path")


def evaluate_run(
    path: str | Path, episodes: int = 20, seed: int = 12345, video: str | Path | None = None
) -> Evaluation:
    """Run `episodes` deterministic episodes of a run's policy (see load_policy for `path`) in an
    environment seeded with `seed`; `video` records them to a .gif or .mp4 file (MuJoCo rendering
    needs MUJOCO_GL, e.g. "egl", set before MuJoCo is first imported)."""
    if episodes < 1:
        raise CalqlError(f"--episodes must be >= 1, got {episodes}")
    if video is not None:
        check_video_path(Path(video))
    policy = load_policy(path)
    env = policy.make_env(seed)
    env.reset(seed=seed)
    frames: list | None = None if video is None else []
    if video is not None and not is_image_space(env.observation_space):
        _enable_rgb_rendering(env)
    results = _run_episodes(env, policy, episodes, frames)
    env.close()
    if video is not None:
        import imageio.v2 as imageio  # optional dependency, only for videos

        try:
            imageio.mimsave(video, cast(list, frames), fps=30)
        except OSError as error:
            raise storage_error(error, f"--video {video}: cannot write the video") or error from None
    returns = np.array([r.raw_return for r in results])
    scores = np.asarray(policy.task.normalized_score(np.array([r.score_return for r in results])), np.float64)
    successes = np.array([float(r.success) for r in results])
    return Evaluation(
        policy.config.task, policy.config.algo, episodes, _estimate(returns), _estimate(scores), _estimate(successes)
    )
