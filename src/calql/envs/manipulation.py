"""Manipulation: OGBench's cube-single, scene and puzzle-3x3 single-task variants, with offline
data generated locally by the scripted oracles OGBench ships (`pip install calql[manipulation]`).

Data: like OGBench's own noisy play data, an oracle (`ogbench.manipspace.oracles.markov`)
solves a stream of random sub-tasks (move the cube, press a button, open the drawer...) with
Gaussian action noise whose scale is drawn per episode; episodes are `episode_length` steps.
Rewards and terminals are relabelled for the fixed evaluation task by OGBench's own
`relabel_dataset` (reward = successful subgoals - number of subgoals, in {-n, ..., 0};
terminal where the task is solved), computed from the state *before* each action, as the
single-task environment does (success_timing='pre'). Generation is seeded and reproducible;
`load_or_generate` caches a dataset as a local Minari dataset.

Online: `<name>-singletask-v0` (OGBench's default task), episode ends at success.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, cast

import gymnasium as gym
import numpy as np

from calql.envs import cache
from calql.envs.common import MapObservation, flat_width, seeded
from calql.errors import CalqlError


class MissingExtraError(CalqlError):
    """OGBench (the `manipulation` extra) is not installed."""


@dataclasses.dataclass(frozen=True)
class ManipSpec:
    env_type: str
    """OGBench's environment name: '<env_type>-v0' (data collection), '<env_type>-singletask-v0' (task)."""
    oracles: tuple[str, ...]
    """Sub-task kinds the data-collection environment asks for (its 'privileged/target_task')."""
    p_stack: float
    subgoals: int
    """n: a step's reward is (successful subgoals - n), so -n is total failure (OGBench's relabel_dataset
    counts cubes, buttons, and for scene the drawer and the window)."""
    max_episode_steps: int
    """The single-task environment's time limit (OGBench's registration)."""
    gripper_always_closed: bool = False


DOMAINS: dict[str, ManipSpec] = {
    "cube-single": ManipSpec("cube-single", ("cube",), p_stack=0.0, subgoals=1, max_episode_steps=200),
    "scene": ManipSpec("scene", ("cube", "button", "drawer", "window"), p_stack=0.5, subgoals=5, max_episode_steps=750),
    "puzzle-3x3": ManipSpec(
        "puzzle-3x3", ("button",), p_stack=0.5, subgoals=9, max_episode_steps=500, gripper_always_closed=True
    ),
}
ACTION_NOISE = 0.1
"""Upper end of the per-episode noise scale xi; noise std per action dim = xi * (1, 1, 1, 3, 10)."""
NOISE_SHAPE = np.array([1.0, 1.0, 1.0, 3.0, 10.0])
MIN_NORM = 0.4
EPISODE_LENGTH = 1000


def make_ogbench(env_id: str, **kwargs) -> gym.Env:
    """gym.make of an OGBench env without its import-time notices (glfw finds no display, calql
    never renders; float64 bounds cast to float32)."""
    _require_ogbench()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id, **kwargs)


def _require_ogbench():
    """Import OGBench (its oracle and environment registry) or fail in one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import ogbench.manipspace  # noqa: F401
            import ogbench.relabel_utils
            from ogbench.manipspace.oracles.markov import button_markov, cube_markov, drawer_markov, window_markov
    except ImportError as err:
        raise MissingExtraError(
            "the manipulation tasks (cube-single, scene, puzzle-3x3) need OGBench: "
            "pip install 'calql[manipulation]' (ogbench==1.2.2)"
        ) from err
    oracles = {
        "cube": cube_markov.CubeMarkovOracle,
        "button": button_markov.ButtonMarkovOracle,
        "drawer": drawer_markov.DrawerMarkovOracle,
        "window": window_markov.WindowMarkovOracle,
    }
    return ogbench.relabel_utils, oracles


def domain_spec(name: str) -> ManipSpec:
    if name not in DOMAINS:
        raise ValueError(f"unknown manipulation domain {name!r}; expected one of {sorted(DOMAINS)}")
    return DOMAINS[name]


def task_env_id(name: str) -> str:
    return f"{domain_spec(name).env_type}-singletask-v0"


def make_env(name: str, seed: int | None = None) -> gym.Env:
    """The single-task environment (OGBench's default task) with float32 observations."""
    env = make_ogbench(task_env_id(name))
    env = MapObservation(env, lambda obs: obs, flat_width(env.observation_space))
    return seeded(env, seed)


@contextlib.contextmanager
def _global_numpy_seed(seed: list[int]):
    """OGBench's oracles draw from numpy's global RNG: seed it here and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(np.random.SeedSequence(seed).generate_state(1))
    try:
        yield
    finally:
        np.random.set_state(state)


def _oracles(spec: ManipSpec, env: gym.Env) -> dict:
    _, classes = _require_ogbench()
    kwargs = {"gripper_always_closed": True} if spec.gripper_always_closed else {}
    return {kind: classes[kind](env=env, min_norm=MIN_NORM, **kwargs) for kind in spec.oracles}


def _rollout(env: gym.Env, spec: ManipSpec, oracles: dict, rng: np.random.Generator, length: int, seed: int):
    """One noisy play episode: observations (length+1), actions, qpos and button states before each action."""
    ob, info = env.reset(seed=seed)
    agent = oracles[info["privileged/target_task"]]
    agent.reset(ob, info)
    xi = rng.uniform(0.0, ACTION_NOISE)
    obs, actions, qpos, buttons = [ob], [], [], []
    for _ in range(length):
        action = np.asarray(agent.select_action(ob, info)) + rng.normal(0.0, xi * NOISE_SHAPE)
        action = np.clip(action, -1.0, 1.0)
        ob, _, _, _, info = env.step(action)
        obs.append(ob)
        actions.append(action)
        qpos.append(info["prev_qpos"])
        buttons.append(info.get("prev_button_states", np.zeros(0)))
        if agent.done:
            ob_new, info = cast(Any, env.unwrapped).set_new_target(p_stack=spec.p_stack)
            agent = oracles[info["privileged/target_task"]]
            agent.reset(ob_new, info)
    return np.array(obs), np.array(actions), np.array(qpos), np.array(buttons)


def generate_dataset(
    name: str, num_transitions: int, seed: int, episode_length: int = EPISODE_LENGTH, report: bool = False
) -> dict[str, np.ndarray]:
    """`num_transitions` steps of noisy oracle play data, relabelled for the fixed task (module doc)."""
    spec = domain_spec(name)
    env = make_ogbench(
        f"{spec.env_type}-v0", terminate_at_goal=False, mode="data_collection", max_episode_steps=episode_length + 1
    )
    try:
        episodes = play_episodes(env, spec, num_transitions, seed, episode_length, report)
    finally:
        env.close()
    return relabelled(name, episodes, np.float32)


def play_episodes(
    env: gym.Env, spec: ManipSpec, num_transitions: int, seed: int, episode_length: int, report: bool
) -> list[tuple[np.ndarray, ...]]:
    """Noisy oracle episodes of `episode_length` steps (the last one shorter) in a data-collection
    environment `env`, `num_transitions` steps in all; each seeded by (seed, its index)."""
    if num_transitions < 1 or episode_length < 1:
        raise ValueError(f"num_transitions and episode_length must be >= 1, got {num_transitions}, {episode_length}")
    oracles = _oracles(spec, env)
    full, rest = divmod(num_transitions, episode_length)
    lengths = [episode_length] * full + ([rest] if rest else [])
    episodes, start = [], time.perf_counter()
    for index, length in enumerate(lengths):
        with _global_numpy_seed([seed, index]):
            rng = np.random.default_rng([seed, index, 1])
            episodes.append(_rollout(env, spec, oracles, rng, length, seed=int(rng.integers(2**31))))
        if report and (index + 1) % max(1, len(lengths) // 10) == 0:
            done = sum(lengths[: index + 1])
            print(
                f"  {done} / {num_transitions} transitions, {done / (time.perf_counter() - start):.1f} steps/s",
                file=sys.stderr,
            )
    return episodes


def relabelled(name: str, episodes: list, observation_dtype: type) -> dict[str, np.ndarray]:
    """Flat transitions of `play_episodes`' episodes, observations as `observation_dtype` (float32
    vectors, uint8 frames), rewards and terminals for the fixed task (`task_labels`)."""
    obs, actions, qpos, buttons = (list(parts) for parts in zip(*episodes))
    data = {
        "observations": np.concatenate([o[:-1] for o in obs]).astype(observation_dtype, copy=False),
        "next_observations": np.concatenate([o[1:] for o in obs]).astype(observation_dtype, copy=False),
        "actions": np.concatenate(actions).astype(np.float32),
    }
    data["rewards"], data["terminals"] = task_labels(name, np.concatenate(qpos), np.concatenate(buttons))
    data["timeouts"] = np.zeros(len(data["rewards"]), bool)
    data["timeouts"][np.cumsum([len(a) for a in actions]) - 1] = True
    return data


def task_labels(name: str, qpos: np.ndarray, button_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rewards float32, terminals bool) of the fixed task at states with these (N, nq) joint
    positions and (N, buttons) button states, by OGBench's `relabel_dataset`. The state (not the
    pixel) task environment sets the targets: the same task, no rendering needed."""
    relabel, _ = _require_ogbench()
    labels = {"qpos": np.asarray(qpos), "button_states": np.asarray(button_states).astype(np.int64)}
    task_env = make_ogbench(task_env_id(name))
    try:
        relabel.relabel_dataset(task_env_id(name), task_env, labels)
    finally:
        task_env.close()
    return labels["rewards"].astype(np.float32), labels["masks"] == 0.0


def relabel_for_task(name: str):
    """A `DataFormat.reward_labels` for OGBench's files: rewards and terminals of the fixed task
    from the data's infos/qpos and infos/button_states (read_ogbench), which are then dropped."""

    def labels(data: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
        rows = len(data["actions"])
        qpos = data.get("infos/qpos", np.zeros((rows, 0)))
        buttons = data.get("infos/button_states", np.zeros((rows, 0), np.int64))
        out = {key: value for key, value in data.items() if not key.startswith("infos/")}
        out["rewards"], out["terminals"] = task_labels(name, qpos, buttons)
        return out

    return labels


def ogbench_info_keys(name: str) -> tuple[str, ...]:
    """The per-state fields of OGBench's files that the fixed task's rewards are computed from:
    joint positions where there are cubes, a drawer or a window; button states where there are buttons."""
    spec = domain_spec(name)
    positions = ("qpos",) if set(spec.oracles) & {"cube", "drawer", "window"} else ()
    return positions + (("button_states",) if "button" in spec.oracles else ())


def dataset_id(name: str, num_transitions: int, seed: int) -> str:
    """The Minari id under which `load_or_generate` caches a dataset."""
    return f"calql/{name}-play-n{num_transitions}-s{seed}-v0"


def load_or_generate(name: str, num_transitions: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`generate_dataset(name, num_transitions, seed)`, cached as a local Minari dataset."""
    return cached_play_data(
        dataset_id(name, num_transitions, seed),
        num_transitions,
        lambda: generate_dataset(name, num_transitions, seed, report=True),
        lambda: make_env(name),
        f"{domain_spec(name).env_type}-v0",
        task_env_id(name),
    )


def cached_play_data(
    dataset_id: str,
    num_transitions: int,
    generate: Callable[[], dict[str, np.ndarray]],
    make_env: Callable[[], gym.Env],
    play_env_id: str,
    task_id: str,
    details: str = "",
) -> dict[str, np.ndarray]:
    """Oracle play data `generate()`d in OGBench's `play_env_id` for the task `task_id`, cached as
    the local Minari dataset `dataset_id` (calql.envs.cache); `details` adds to its description."""
    description = (
        f"calql noisy oracle play data on OGBench {play_env_id} (Markov oracles, action noise "
        f"xi ~ U[0, {ACTION_NOISE}] per episode{details}), rewards and terminals for {task_id}"
    )
    return cache.load_or_generate(
        dataset_id, num_transitions, generate, make_env, "OGBench Markov oracles with noise", description
    )
