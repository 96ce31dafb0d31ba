"""The offline-to-online loop of docs/algorithm.md section 5: offline gradient steps, then online
episodes each followed by len(episode) * UTD updates on mixed batches, with periodic
evaluation of the deterministic policy, checkpoints, and exact resume."""

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
from rich.console import Console

from calql.agent.acting import calibration_stats, deterministic_action, sample_action
from calql.agent.state import AgentState, create_agent
from calql.agent.update import update, update_seeds
from calql.config import ConfigError, TrainConfig, config_from_dict, differences, online_eval_steps, validate
from calql.data.replay import OnlineBuffer, episode_transitions, gather, offline_transitions, sample_stack
from calql.data.returns import transform_rewards
from calql.data.transitions import Transitions
from calql.envs.binding import bind
from calql.envs.tasks import Task, get_task
from calql.training import checkpoint, reference
from calql.training.metrics import RunLog, mean_metrics, new_run_dir, read_config
from calql.training.progress import PhaseProgress
from calql.training.rollout import evaluate, run_episode
from calql.training.watch import LagrangeWatch

CALIBRATION_BATCH = 4096


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
    console: Console
    report: Callable[[dict], None]
    checkpoints: object
    counters: Counters = dataclasses.field(default_factory=Counters)
    env: gym.Env | None = None
    buffer: OnlineBuffer | None = None
    timers: dict[str, float] = dataclasses.field(default_factory=lambda: defaultdict(float))
    lagrange_watch: LagrangeWatch | None = None


@dataclasses.dataclass
class RunResult:
    run_dir: str
    offline: dict
    final: dict
    regret: float
    wall_time: float
    timers: dict[str, float]
    warnings: list[str] = dataclasses.field(default_factory=list)


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
        raw["terminals"], raw["timeouts"], task.return_rule(config.agent.discount),
    )


def _empty_stack(run: Run, size: int) -> Transitions:
    """Zero batches for an agent with nothing to learn in this call (no sampling, no RNG use)."""
    shape = (size, run.config.batch_size)
    return Transitions(*(np.zeros(shape + field.shape[1:], field.dtype) for field in run.offline))


def _scanned_call(runs: list[Run], batches: list[Transitions], actives: list[np.ndarray]) -> list[dict]:
    """One compiled call: the plain update for one agent, the vmapped one for several seeds."""
    if len(runs) == 1:
        runs[0].state, metrics = update(runs[0].state, jax.device_put(batches[0]), jax.device_put(actives[0]))
        return [mean_metrics(metrics)]
    stacked = Transitions(*(np.stack(fields) for fields in zip(*batches)))
    states, metrics = update_seeds([run.state for run in runs], jax.device_put(stacked), jax.device_put(np.stack(actives)))
    for run, state in zip(runs, states):
        run.state = state
    metrics = {key: np.asarray(value) for key, value in metrics.items()}
    return [{key: float(value[i]) for key, value in metrics.items()} for i in range(len(runs))]


def _updates(runs: list[Run], counts: list[int]) -> list[dict[str, float]]:
    """counts[i] gradient steps for runs[i], in fixed-size scanned calls (the last ones padded)."""
    size = runs[0].config.updates_per_call
    totals: list[dict[str, float]] = [defaultdict(float) for _ in runs]
    for start in range(0, max(counts), size):
        actives = [np.arange(size) < count - start for count in counts]
        with _Timer(runs[0].timers, "sample"):
            batches = [
                sample_stack(run.rng, run.offline, run.buffer, size, run.config.batch_size, run.config.mixing_ratio)
                if active.any() else _empty_stack(run, size)
                for run, active in zip(runs, actives)
            ]
        with _Timer(runs[0].timers, "update"):
            call_metrics = _scanned_call(runs, batches, actives)
        for total, metrics, active, count in zip(totals, call_metrics, actives, counts):
            for key, value in metrics.items():
                total[key] += value * active.sum() / max(count, 1)
    results = []
    for run, total, count in zip(runs, totals, counts):
        run.counters.gradient_steps += count
        results.append({**total, "gradient_steps": run.counters.gradient_steps, "calibrated": float(run.state.calibrate)})
    return results


def _record_training(run: Run, phase: str, step: int, metrics: dict) -> None:
    """Log a training record and warn once, in one line, if the Lagrange multiplier runs away."""
    run.log.record(phase, step, metrics)
    if run.lagrange_watch is None or "critic/cql_multiplier" not in metrics:
        return
    warning = run.lagrange_watch.observe(int(metrics["gradient_steps"]), metrics["critic/cql_gap"],
                                         metrics["critic/cql_multiplier"])
    if warning:
        run.console.print(f"{warning} (seed {run.config.seed})", markup=False, highlight=False, style="yellow", soft_wrap=True)
        run.counters.warnings.append(warning)


def _evaluate(run: Run, phase: str, step: int) -> dict:
    with _Timer(run.timers, "evaluate"):
        actor = run.state.actor
        result = evaluate(run.eval_env, lambda obs: np.asarray(deterministic_action(actor, obs)),
                          run.config.eval_episodes, run.task.score_reward_info)
        result["normalized_score"] = float(run.task.normalized_score(result.pop("score_return")))
        result.update(mean_metrics(calibration_stats(run.state, run.calibration_batch)))
        if run.counters.online_successes:
            result["cumulative_regret"] = 1.0 - float(np.mean(run.counters.online_successes))
    row = run.log.record(f"{phase}/eval", step, result)
    run.report({**row, "seed": run.config.seed})
    return row


def _due(done: int, before: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, done]."""
    return every > 0 and done // every > before // every


def _offline_phase(runs: list[Run]) -> None:
    """All runs step in lockstep: the same chunks, evaluations and checkpoints."""
    cfg, lead = runs[0].config, runs[0].counters
    every = cfg.offline_eval_every or max(cfg.offline_steps, 1)
    progress = PhaseProgress(runs[0].console, _label("offline gradient steps", runs), cfg.offline_steps, lead.offline_done)
    while lead.offline_done < cfg.offline_steps:
        before = lead.offline_done
        boundaries = [every - before % every, cfg.offline_steps - before, cfg.updates_per_call * 10]
        if cfg.checkpoint_every:
            boundaries.append(cfg.checkpoint_every - before % cfg.checkpoint_every)
        chunk = min(boundaries)
        all_metrics = _updates(runs, [chunk] * len(runs))
        for run, metrics in zip(runs, all_metrics):
            run.counters.offline_done += chunk
            done = run.counters.offline_done
            _record_training(run, "offline/train", done, metrics)
            if done % every == 0 or done == cfg.offline_steps:
                run.counters.offline_result = _evaluate(run, "offline", done)
            if _due(done, before, cfg.checkpoint_every) or done == cfg.offline_steps:
                _save_checkpoint(run)
        progress.update(lead.offline_done, all_metrics[0])
    progress.close()
    for run in runs:
        if run.counters.offline_result is None:
            run.counters.offline_result = _evaluate(run, "offline", 0)


def _label(text: str, runs: list[Run]) -> str:
    return text if len(runs) == 1 else f"{text} ({len(runs)} seeds)"


def _collect_episode(run: Run) -> tuple[Transitions, bool]:
    def explore(observation):
        action, run.act_key = sample_action(run.state.actor, observation, run.act_key)
        return np.asarray(action)

    with _Timer(run.timers, "environment"):
        episode = run_episode(run.env, explore)
    task = run.task
    rewards = transform_rewards(episode.rewards, task.reward_scale, task.reward_bias)
    transitions = episode_transitions(
        episode.observations, episode.actions, rewards, episode.next_observations,
        episode.terminated, task.return_rule(run.config.agent.discount),
    )
    return transitions, episode.success


def _start_online(run: Run) -> None:
    """The training environment and an empty online buffer; CORL mode drops the calibration."""
    cfg = run.config
    if not cfg.calibrate_online:
        run.state = run.state.replace(calibrate=False)
    run.env = run.task.make_env(cfg.seed)
    run.env.reset(seed=cfg.seed)
    capacity = cfg.online_steps + run.env.spec.max_episode_steps
    run.buffer = OnlineBuffer(capacity, run.offline.observations.shape[1], run.offline.actions.shape[1])


def _collect(run: Run) -> tuple[int, bool]:
    """One episode into the run's buffer: (its length, success)."""
    transitions, success = _collect_episode(run)
    run.buffer.add(transitions)
    run.counters.online_successes.append(success)
    run.counters.online_done += transitions.size
    return transitions.size, success


def _after_updates(run: Run, before: int, length: int, success: bool, metrics: dict) -> None:
    """Record, evaluate and checkpoint once an episode's updates are done."""
    cfg, counters = run.config, run.counters
    _record_training(run, "online/train", counters.online_done,
                     {**metrics, "episode_success": float(success), "episode_length": length})
    if counters.online_done >= counters.next_eval or counters.online_done >= cfg.online_steps:
        _evaluate_online(run)
    if _due(counters.online_done, before, cfg.checkpoint_every) or counters.online_done >= cfg.online_steps:
        _save_checkpoint(run)


def _next_eval_step(config: TrainConfig, done: int) -> int:
    """The first nominal evaluation step after `done` online steps (the end if none is left)."""
    steps = online_eval_steps(config.online_steps, config.eval_every, config.start_evals, config.start_eval_fraction)
    return next((step for step in steps if step > done), config.online_steps)


def _evaluate_online(run: Run) -> None:
    counters = run.counters
    counters.final_result = _evaluate(run, "online", counters.online_done)
    counters.next_eval = _next_eval_step(run.config, counters.online_done)


def _online_phase(runs: list[Run]) -> None:
    """Rounds: each unfinished run collects one episode, then every run takes len * UTD updates
    in one (vmapped) call; finished runs idle with zero updates so the compiled shape stays."""
    cfg = runs[0].config
    progress = PhaseProgress(runs[0].console, _label("online env steps", runs), cfg.online_steps,
                             min(run.counters.online_done for run in runs))
    for run in runs:
        run.counters.final_result = run.counters.final_result or run.counters.offline_result
        if run.counters.online_done == 0 and run.counters.next_eval == 0:
            _evaluate_online(run)  # the pre-trained policy, before the first online transition
    while any(run.counters.online_done < cfg.online_steps for run in runs):
        befores = [run.counters.online_done for run in runs]
        episodes = [_collect(run) if before < cfg.online_steps else (0, False) for run, before in zip(runs, befores)]
        all_metrics = _updates(runs, [length * cfg.utd for length, _ in episodes])
        for run, before, (length, success), metrics in zip(runs, befores, episodes, all_metrics):
            if length:
                _after_updates(run, before, length, success, metrics)
        progress.update(min(run.counters.online_done for run in runs), all_metrics[0])
    progress.close()


def _save_checkpoint(run: Run) -> None:
    with _Timer(run.timers, "checkpoint"):
        buffer = run.buffer
        arrays = {"size": np.asarray(0 if buffer is None else buffer.size)}
        if buffer is not None and buffer.size:
            arrays.update({name: field[: buffer.size] for name, field in zip(Transitions._fields, buffer.data)})
        meta = {
            "config": checkpoint.config_fingerprint(dataclasses.asdict(run.config)),
            "counters": dataclasses.asdict(run.counters),
            "rng": checkpoint.generator_state(run.rng),
            "act_key": np.asarray(run.act_key).tolist(),
            "eval_env_rng": checkpoint.env_rng_states(run.eval_env),
            "env_rng": None if run.env is None else checkpoint.env_rng_states(run.env),
            "log_lines": run.log.lines,
            "log_step": run.log.timeline("online" if run.env else "offline",
                                         run.counters.online_done if run.env else run.counters.offline_done),
        }
        checkpoint.save(run.checkpoints, run.counters.gradient_steps, run.state, arrays, meta)


def _restore(run: Run, restored: tuple) -> None:
    """Put a run back exactly where a checkpoint left it."""
    agent, arrays, meta = restored
    run.state = agent
    run.counters = Counters(**meta["counters"])
    run.rng = checkpoint.generator_from_state(meta["rng"])
    run.act_key = jax.numpy.asarray(np.asarray(meta["act_key"], np.uint32))
    checkpoint.set_env_rng_states(run.eval_env, meta["eval_env_rng"])
    if meta["env_rng"] is not None:
        _start_online(run)
        checkpoint.set_env_rng_states(run.env, meta["env_rng"])
        size = int(arrays["size"])
        if size:
            run.buffer.add(Transitions(*(np.asarray(arrays[name]) for name in Transitions._fields)))


def _resume_config(config: TrainConfig) -> TrainConfig:
    """The saved configuration, refusing any option that changed since the run started."""
    saved = config_from_dict(read_config(Path(config.resume)))
    changed = differences(saved, config, ignore=("run_dir", "run_name", "resume"))
    if changed:
        raise checkpoint.CheckpointError(
            f"--resume {config.resume}: options differ from the run's ({'; '.join(changed)}); "
            "resume with the same options or start a new run"
        )
    return config


def _open_run(config: TrainConfig, console: Console, report: Callable[[dict], None], timers: dict) -> Run:
    task = bind(get_task(config.task), config.dataset, config.filter_dataset)
    with _Timer(timers, "dataset"):
        offline = load_offline_data(task, config)
    agent_key, act_key = jax.random.split(jax.random.PRNGKey(config.seed))
    state = create_agent(agent_key, offline.observations.shape[1], offline.actions.shape[1], config.agent,
                         calibrate=config.algo == "calql")
    # A fixed batch for the calibration diagnostic, from its own seed so resuming needs no copy of it.
    calibration_rows = np.random.default_rng([config.seed, 1]).integers(0, offline.size, min(CALIBRATION_BATCH, offline.size))
    eval_env = task.make_env(config.seed + 1)
    eval_env.reset(seed=config.seed + 1)
    resuming = bool(config.resume)
    run_dir = Path(config.resume) if resuming else new_run_dir(config)
    if not resuming and (run_dir / "config.json").exists():
        raise ConfigError(f"--run-name: {run_dir} already holds a run; resume it with --resume {run_dir} "
                          "or choose another --run-name")
    checkpoints = checkpoint.manager(run_dir, config.keep_checkpoints)
    restored = checkpoint.restore_latest(checkpoints, state) if resuming else None
    if resuming and restored is None:
        raise checkpoint.CheckpointError(f"--resume {config.resume}: no readable checkpoint in {run_dir / checkpoint.CHECKPOINT_FOLDER}; start a new run")
    meta = restored[2] if restored else {}
    log = RunLog(run_dir, config, meta.get("log_lines"), meta.get("log_step"))
    calibration_batch = gather(offline, calibration_rows)  # keeps the true MC returns for the diagnostic
    if config.reference == "learned" and config.algo == "calql":
        offline = _with_learned_reference(offline, config, calibration_rows, log, timers)
    run = Run(config, task, state, offline, log, np.random.default_rng(config.seed), act_key,
              calibration_batch, eval_env, console, report, checkpoints, timers=timers)
    if restored:
        _restore(run, restored)
    if config.agent.cql_lagrange:
        run.lagrange_watch = LagrangeWatch(config.agent.cql_target_action_gap, warned=bool(run.counters.warnings))
    return run


def _with_learned_reference(offline: Transitions, config: TrainConfig, probe_rows: np.ndarray, log: RunLog,
                            timers: dict) -> Transitions:
    """The offline data with its MC returns replaced by the fitted behaviour value; a resumed run
    reuses the values its first attempt saved instead of fitting again."""
    values = reference.load_values(log.path, offline.size) if config.resume else None
    if values is None:
        # fold_in leaves the agent's and the actor's key streams as they are without a reference.
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
        with _Timer(timers, "reference"):
            values = reference.fit_reference(offline, config, key, probe_rows,
                                             lambda step, metrics: log.record("offline/reference", step, metrics))
        reference.save_values(log.path, values)
    return offline._replace(reference=values)


def _finish(run: Run, start: float) -> RunResult:
    counters = run.counters
    final = counters.final_result or counters.offline_result
    regret = 1.0 - float(np.mean(counters.online_successes)) if counters.online_successes else math.nan
    result = RunResult(str(run.log.path), counters.offline_result, final, regret, time.perf_counter() - start,
                       dict(run.timers), list(counters.warnings))
    run.log.write_summary(dataclasses.asdict(result))
    run.log.close()
    run.checkpoints.close()
    return result


def _train_population(runs: list[Run], start: float) -> list[RunResult]:
    precision = runs[0].config.matmul_precision
    with jax.default_matmul_precision(None if precision == "default" else precision):
        _offline_phase(runs)
        if runs[0].config.online_steps > 0:
            for run in runs:
                if run.env is None:
                    _start_online(run)
            _online_phase(runs)
    return [_finish(run, start) for run in runs]


def train(
    config: TrainConfig, report: Callable[[dict], None] = lambda row: None, console: Console | None = None
) -> RunResult:
    """Run (or resume) offline pre-training then online fine-tuning; returns the summary."""
    start = time.perf_counter()
    config = validate(config)
    if config.resume:
        config = _resume_config(config)
    run = _open_run(config, console or Console(), report, defaultdict(float))
    return _train_population([run], start)[0]


def train_seeds(
    config: TrainConfig, seeds: list[int], report: Callable[[dict], None] = lambda row: None,
    console: Console | None = None,
) -> list[RunResult]:
    """Independent agents for several seeds in one process: each has its own parameters, RNGs,
    online buffer, environments and run directory (resumable alone as a single-seed run), and
    all share one compiled, vmapped update per call."""
    start = time.perf_counter()
    config = validate(config)
    if config.resume:
        raise ConfigError("--resume cannot be combined with --seeds: resume each seed's run directory on its own")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct, got {seeds}")
    console = console or Console()
    runs = [_open_run(dataclasses.replace(config, seed=seed, seeds=()), console, report, defaultdict(float))
            for seed in seeds]
    return _train_population(runs, start)
