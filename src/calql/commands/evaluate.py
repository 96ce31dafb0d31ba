"""`calql eval RUN_DIR_or_CHECKPOINT --episodes N [--video FILE]`: evaluate a trained policy.

Reports mean return, normalized score and success rate with 95% bootstrap confidence
intervals over episodes; `--video` records the episodes (MuJoCo tasks, MUJOCO_GL=egl).
"""

import argparse
import os
from pathlib import Path

import numpy as np

from calql.errors import CalqlError

BOOTSTRAP_SAMPLES = 10_000


def bootstrap_interval(values: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP_SAMPLES, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def _locate(path: Path) -> tuple[Path, int | None]:
    """(run directory, checkpoint step or None for the newest) from a run dir or a checkpoint dir."""
    if (path / "config.json").is_file():
        return path, None
    if path.name.isdigit() and (path.parent.parent / "config.json").is_file():
        return path.parent.parent, int(path.name)
    raise CalqlError(f"{path}: neither a run directory (with config.json) nor a checkpoint (RUN_DIR/checkpoints/STEP)")


def load_policy(path: Path):
    """(config, task, agent) restored from a run directory's newest or a given checkpoint."""
    import jax

    from calql.agent.state import create_agent
    from calql.config import config_from_dict
    from calql.envs.binding import bind
    from calql.envs.tasks import get_task
    from calql.training import checkpoint
    from calql.training.metrics import read_config

    run_dir, step = _locate(path)
    config = config_from_dict(read_config(run_dir))
    task = bind(get_task(config.task), config.dataset, config.filter_dataset)
    probe = task.make_env(config.seed)
    template = create_agent(jax.random.PRNGKey(0), probe.observation_space.shape[0], probe.action_space.shape[0],
                            config.agent, calibrate=config.algo == "calql")
    probe.close()
    mgr = checkpoint.manager(run_dir, config.keep_checkpoints)
    restored = checkpoint.restore_latest(mgr, template, step)
    mgr.close()
    if restored is None:
        raise CalqlError(f"{run_dir}: no readable checkpoint{'' if step is None else f' {step}'}; was the run started with calql >= 0.1 and did it save one?")
    return config, task, restored[0]


def _enable_rgb_rendering(env) -> None:
    """Turn on rgb_array rendering of an env built without a render mode (and of the env it wraps)."""
    from calql.envs.common import env_stack

    for inner in env_stack(env):
        inner.render_mode = "rgb_array"


def _run_episodes(env, agent, episodes: int, record: bool, score_key: str):
    from calql.agent.acting import deterministic_action
    from calql.training.rollout import run_episode

    frames: list[np.ndarray] = []
    policy = lambda obs: np.asarray(deterministic_action(agent.actor, obs))  # noqa: E731

    def recording_policy(obs):
        frames.append(env.unwrapped.render())
        return policy(obs)

    results = [run_episode(env, recording_policy if record else policy, score_key=score_key) for _ in range(episodes)]
    return results, frames


def evaluate_checkpoint(path: Path, episodes: int, seed: int, video: Path | None = None) -> dict:
    config, task, agent = load_policy(path)
    env = task.make_env(seed)
    env.reset(seed=seed)
    if video is not None:
        _enable_rgb_rendering(env)
    results, frames = _run_episodes(env, agent, episodes, video is not None, task.score_reward_info)
    env.close()
    if video is not None:
        import imageio.v2 as imageio

        imageio.mimsave(video, frames, fps=30)
    returns = np.array([r.raw_return for r in results])
    successes = np.array([float(r.success) for r in results])
    scores = np.asarray(task.normalized_score(np.array([r.score_return for r in results])), np.float64)
    return {
        "task": config.task, "algo": config.algo, "episodes": episodes,
        "return": (returns.mean(), *bootstrap_interval(returns)),
        "normalized_score": (scores.mean(), *bootstrap_interval(scores)),
        "success": (successes.mean(), *bootstrap_interval(successes)),
    }


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="calql eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a run directory (newest checkpoint) or RUN_DIR/checkpoints/STEP")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes (deterministic policy)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the evaluation environment")
    parser.add_argument("--video", type=Path, default=None, help="record the episodes to this file (.mp4 or .gif)")
    options = parser.parse_args(args)
    if options.episodes < 1:
        raise CalqlError(f"--episodes must be >= 1, got {options.episodes}")
    if options.video is not None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the first mujoco import
    report = evaluate_checkpoint(options.path, options.episodes, options.seed, options.video)
    print(f"{report['algo']} on {report['task']}, {report['episodes']} episodes (mean [95% bootstrap CI]):")
    for name in ("return", "normalized_score", "success"):
        mean, low, high = report[name]
        print(f"  {name:17s} {mean:8.3f}  [{low:.3f}, {high:.3f}]")
    if options.video is not None:
        print(f"  video: {options.video}")
    return 0
