"""Visual manipulation: OGBench's visual single-task environments (`visual-<domain>-singletask-v0`),
whose observations are 64x64x3 uint8 RGB frames rendered by MuJoCo offscreen, with the offline
data of calql.envs.manipulation (the same noisy oracles and relabelling) seen through the same camera.

Data: the oracles play in OGBench's visual data-collection environment (`visual-<domain>-v0`), so
each stored frame is the one that environment rendered (the same camera, colours and shadows as
OGBench's published visual datasets, which `--dataset FILE.npz` reads instead). Rendering is the
cost: docs/algorithm.md section 10 has the measured frames per second, hence small datasets of
EPISODE_LENGTH-step episodes.

Rendering needs an offscreen OpenGL backend chosen before MuJoCo is first imported: MUJOCO_GL=egl
(or osmesa). The command line sets egl when a visual task is named and MUJOCO_GL is unset
(calql.cli); otherwise `require_rendering` fails in one line naming the variable.
"""

from __future__ import annotations

import functools
import os
import warnings
import weakref

import gymnasium as gym
import numpy as np

from calql.envs import manipulation
from calql.envs.common import seeded
from calql.errors import CalqlError

IMAGE_SIZE = 64
"""Height and width of OGBench's visual observations (its registration's width and height)."""
EPISODE_LENGTH = 200
"""Steps per generated episode: the cube-single task's time limit, so that a small dataset still
holds several starts (OGBench's own play data uses 1000-step episodes)."""


class RenderingError(CalqlError):
    """MuJoCo cannot render offscreen in this process."""


@functools.cache
def rendering_problem() -> str | None:
    """Why MuJoCo cannot render offscreen here, in one line, or None when it can (probed once,
    on an empty scene)."""
    import mujoco

    try:
        renderer = mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 8, 8)
        try:
            renderer.update_scene(mujoco.MjData(renderer.model))
            renderer.render()
        finally:
            renderer.close()
    except Exception as err:  # any backend failure (GL, EGL, GLFW, a missing library) means the same fix
        text = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        backend = os.environ.get("MUJOCO_GL") or "unset (GLFW, which needs a display)"
        return f"MuJoCo cannot render offscreen with MUJOCO_GL {backend} ({type(err).__name__}: {text})"
    return None


def require_rendering(task: str) -> None:
    """RenderingError naming MUJOCO_GL and the fix when offscreen rendering does not work here."""
    problem = rendering_problem()
    if problem is not None:
        raise RenderingError(
            f"{task} renders its observations: {problem}; set MUJOCO_GL=egl (or osmesa, with libOSMesa "
            f"installed) before Python starts, e.g. MUJOCO_GL=egl calql train --task {task}"
        )


def visual_env_id(name: str) -> str:
    return f"visual-{manipulation.task_env_id(name)}"


class ClosesRenderer(gym.Wrapper):
    """OGBench's environments never free their MuJoCo renderer: free it on close, and at the latest
    when Python exits (later, EGL is torn down first and freeing it prints a traceback)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._free = weakref.finalize(self, _free_renderer, env.unwrapped)
        with warnings.catch_warnings():  # OGBench builds a new float64-bounded Box at every access: once here
            warnings.simplefilter("ignore")
            self.action_space = env.action_space

    def close(self):
        self._free()
        super().close()


def _free_renderer(base: gym.Env) -> None:
    renderer = getattr(base, "_renderer", None)
    if renderer is not None:
        renderer.close()
        base._renderer = None  # type: ignore[attr-defined]


def _make_visual(env_id: str, task: str, **kwargs) -> gym.Env:
    require_rendering(task)
    return ClosesRenderer(manipulation.make_ogbench(env_id, **kwargs))


def make_env(name: str, seed: int | None = None, max_episode_steps: int | None = None) -> gym.Env:
    """The visual single-task environment (OGBench's default task): (64, 64, 3) uint8 observations.
    max_episode_steps: a shorter time limit than OGBench's (tests: every step renders a frame)."""
    limit = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return seeded(_make_visual(visual_env_id(name), f"visual-{name}", **limit), seed)


def make_play_env(name: str, episode_length: int = EPISODE_LENGTH) -> gym.Env:
    """OGBench's visual data-collection environment of the domain (random sub-tasks, no task end)."""
    return _make_visual(
        f"visual-{manipulation.domain_spec(name).env_type}-v0",
        f"visual-{name}",
        terminate_at_goal=False,
        mode="data_collection",
        max_episode_steps=episode_length + 1,
    )


def generate_dataset(
    name: str, num_transitions: int, seed: int, episode_length: int = EPISODE_LENGTH, report: bool = False
) -> dict[str, np.ndarray]:
    """calql.envs.manipulation's noisy oracle play data with the visual environment's frames as
    observations (uint8), relabelled for the fixed task."""
    env = make_play_env(name, episode_length)
    try:
        spec = manipulation.domain_spec(name)
        episodes = manipulation.play_episodes(env, spec, num_transitions, seed, episode_length, report)
    finally:
        env.close()
    return manipulation.relabelled(name, episodes, np.uint8)


def dataset_id(name: str, num_transitions: int, seed: int) -> str:
    """The Minari id under which `load_or_generate` caches a dataset."""
    return f"calql/visual-{name}-play-{IMAGE_SIZE}px-n{num_transitions}-s{seed}-v0"


def load_or_generate(name: str, num_transitions: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`generate_dataset(name, num_transitions, seed)`, cached as a local Minari dataset of uint8 frames."""
    return manipulation.cached_play_data(
        dataset_id(name, num_transitions, seed),
        num_transitions,
        lambda: generate_dataset(name, num_transitions, seed, report=True),
        lambda: make_env(name),
        f"visual-{manipulation.domain_spec(name).env_type}-v0",
        visual_env_id(name),
        f", {EPISODE_LENGTH}-step episodes, observations {IMAGE_SIZE}x{IMAGE_SIZE}x3 uint8 frames",
    )
