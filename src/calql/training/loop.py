"""The offline-to-online loop of ALGORITHM.md section 5: offline gradient steps, then online
episodes each followed by len(episode) * UTD updates on mixed batches, with periodic
evaluation of the deterministic policy."""

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable

import gymnasium as gym
import jax
import numpy as np

from calql.agent.acting import calibration_stats, deterministic_action, sample_action
from calql.agent.state import AgentState, create_agent
from calql.agent.update import update
from calql.config import TrainConfig, validate
from calql.data.replay import OnlineBuffer, episode_transitions, gather, offline_transitions, sample_stack
from calql.data.returns import transform_rewards
from calql.data.transitions import Transitions
from calql.envs.tasks import Task, get_task
from calql.training.metrics import RunLog, mean_metrics
from calql.training.rollout import evaluate, run_episode

CALIBRATION_BATCH = 4096


@dataclasses.dataclass
class Run:
    """Mutable bookkeeping of one run (the learner itself is the immutable AgentState)."""

    config: TrainConfig
    task: Task
    state: AgentState
    offline: Transitions
    log: RunLog
    rng: np.random.Generator
    act_key: jax.Array
    calibration_batch: Transitions
    eval_env: gym.Env
    report: Callable[[dict], None]
    timers: dict[str, float] = dataclasses.field(default_factory=lambda: defaultdict(float))
    gradient_steps: int = 0
    online_successes: list[bool] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunResult:
    run_dir: str
    offline: dict
    final: dict
    regret: float
    wall_time: float
    timers: dict[str, float]


class _Timer:
    def __init__(self, timers: dict, name: str):
        self.timers, self.name = timers, name

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timers[self.name] += time.perf_counter() - self.start


def load_offline_data(task: Task, config: TrainConfig) -> Transitions:
    """The task's dataset with the reward transform applied first, then MC returns."""
    raw = task.load_dataset(config.dataset_size, config.dataset_seed)
    rewards = transform_rewards(raw["rewards"], task.reward_scale, task.reward_bias)
    return offline_transitions(
        raw["observations"], raw["actions"], rewards, raw["next_observations"],
        raw["terminals"], raw["timeouts"], config.agent.discount, task.sparse_failure_reward,
    )


def _updates(run: Run, num_updates: int, online: OnlineBuffer | None) -> dict[str, float]:
    """num_updates gradient steps in fixed-size scanned calls (the last one padded)."""
    size = run.config.updates_per_call
    totals: dict[str, float] = defaultdict(float)
    for start in range(0, num_updates, size):
        active = np.arange(size) < num_updates - start
        with _Timer(run.timers, "sample"):
            batches = sample_stack(run.rng, run.offline, online, size, run.config.batch_size, run.config.mixing_ratio)
        with _Timer(run.timers, "update"):
            run.state, metrics = update(run.state, jax.device_put(batches), jax.device_put(active))
            metrics = mean_metrics(metrics)
        for key, value in metrics.items():
            totals[key] += value * active.sum() / num_updates
    run.gradient_steps += num_updates
    return {**totals, "gradient_steps": run.gradient_steps, "calibrated": float(run.state.calibrate)}


def _evaluate(run: Run, phase: str, step: int) -> dict:
    with _Timer(run.timers, "evaluate"):
        actor = run.state.actor
        result = evaluate(run.eval_env, lambda obs: np.asarray(deterministic_action(actor, obs)), run.config.eval_episodes)
        result["normalized_score"] = float(run.task.normalized_score(result["return"]))
        result.update(mean_metrics(calibration_stats(run.state, run.calibration_batch)))
        if run.online_successes:
            result["cumulative_regret"] = 1.0 - float(np.mean(run.online_successes))
    row = run.log.record(f"{phase}/eval", step, result)
    run.report(row)
    return row


def _offline_phase(run: Run) -> dict:
    cfg = run.config
    every = cfg.offline_eval_every or max(cfg.offline_steps, 1)
    done, last = 0, None
    while done < cfg.offline_steps:
        chunk = min(every - done % every, cfg.offline_steps - done, cfg.updates_per_call * 10)
        metrics = _updates(run, chunk, None)
        done += chunk
        run.log.record("offline/train", done, metrics)
        if done % every == 0 or done == cfg.offline_steps:
            last = _evaluate(run, "offline", done)
    return last if last is not None else _evaluate(run, "offline", 0)


def _collect_episode(run: Run, env) -> tuple[Transitions, bool]:
    def explore(observation):
        action, run.act_key = sample_action(run.state.actor, observation, run.act_key)
        return np.asarray(action)

    with _Timer(run.timers, "environment"):
        episode = run_episode(env, explore)
    task = run.task
    rewards = transform_rewards(episode.rewards, task.reward_scale, task.reward_bias)
    transitions = episode_transitions(
        episode.observations, episode.actions, rewards, episode.next_observations,
        episode.terminated, run.config.agent.discount, task.sparse_failure_reward,
    )
    return transitions, episode.success


def _online_phase(run: Run, offline_result: dict) -> dict:
    cfg = run.config
    if not cfg.calibrate_online:
        run.state = run.state.replace(calibrate=False)  # CORL: no calibration online
    env = run.task.make_env(cfg.seed)
    env.reset(seed=cfg.seed)
    buffer = OnlineBuffer(cfg.online_steps + env.spec.max_episode_steps, run.offline.observations.shape[1],
                          run.offline.actions.shape[1])
    steps, next_eval, last = 0, cfg.eval_every, offline_result
    while steps < cfg.online_steps:
        transitions, success = _collect_episode(run, env)
        buffer.add(transitions)
        run.online_successes.append(success)
        steps += transitions.size
        metrics = _updates(run, transitions.size * cfg.utd, buffer)
        run.log.record("online/train", steps, {**metrics, "episode_success": float(success),
                                               "episode_length": transitions.size})
        if steps >= next_eval or steps >= cfg.online_steps:
            last = _evaluate(run, "online", steps)
            next_eval = (steps // cfg.eval_every + 1) * cfg.eval_every
    return last


def train(config: TrainConfig, report: Callable[[dict], None] = lambda row: None) -> RunResult:
    """Run offline pre-training then online fine-tuning; returns the summary."""
    start = time.perf_counter()
    config = validate(config)
    task = get_task(config.task)
    timers: dict[str, float] = defaultdict(float)
    with _Timer(timers, "dataset"):
        offline = load_offline_data(task, config)
    key = jax.random.PRNGKey(config.seed)
    agent_key, act_key = jax.random.split(key)
    state = create_agent(agent_key, offline.observations.shape[1], offline.actions.shape[1], config.agent,
                         calibrate=config.algo == "calql")
    rng = np.random.default_rng(config.seed)
    eval_env = task.make_env(config.seed + 1)
    eval_env.reset(seed=config.seed + 1)
    calibration_batch = gather(offline, rng.integers(0, offline.size, min(CALIBRATION_BATCH, offline.size)))
    run = Run(config, task, state, offline, RunLog(config), rng, act_key, calibration_batch, eval_env, report, timers)
    offline_result = _offline_phase(run)
    final = _online_phase(run, offline_result) if config.online_steps > 0 else offline_result
    regret = 1.0 - float(np.mean(run.online_successes)) if run.online_successes else math.nan
    result = RunResult(str(run.log.path), offline_result, final, regret, time.perf_counter() - start, dict(timers))
    run.log.write_summary(dataclasses.asdict(result))
    run.log.close()
    return result
