"""One seed's offline-to-online training, docs/algorithm.md section 5, step by step:

offline: gradient steps in chunks; after each, record, evaluate when due, checkpoint when due.
online:  evaluate at step 0; then rounds of: collect an episode, take len(episode) * UTD
         gradient steps on mixed batches (none for the episodes of the warm-up), record, evaluate
         when due, checkpoint when due.

population.py runs the same steps for several seeds in lockstep with one vmapped update.
"""

from collections import defaultdict

import jax
import numpy as np

from calql.agent.acting import calibration_stats, deterministic_action, sample_action
from calql.agent.update import update
from calql.config import TrainConfig, online_eval_steps
from calql.data.replay import episode_transitions, sample_stack
from calql.data.returns import transform_rewards
from calql.data.transitions import Transitions
from calql.rundir import OFFLINE, ONLINE, row_phase
from calql.training.checkpoint import save_run
from calql.training.divergence import check_finite, where_in_training
from calql.training.metrics import mean_metrics
from calql.training.progress import PhaseProgress
from calql.training.rollout import evaluate, evaluate_lockstep, run_episode
from calql.training.run import Run, Timer, matmul_precision, start_online


def train_run(run: Run) -> None:
    """Offline pre-training, then online fine-tuning (if it has any steps), from where the run is."""
    with matmul_precision(run.config):
        offline_phase(run)
        if run.config.online_steps > 0:
            online_phase(run)


def offline_phase(run: Run) -> None:
    cfg, counters = run.config, run.counters
    progress = PhaseProgress(run.console, "offline gradient steps", cfg.offline_steps, counters.offline_done)
    while counters.offline_done < cfg.offline_steps:
        chunk = offline_chunk(cfg, counters.offline_done)
        metrics = gradient_steps(run, chunk)
        end_offline_chunk(run, chunk, metrics)
        progress.update(counters.offline_done, metrics)
    progress.close()
    end_offline_phase(run)


def online_phase(run: Run) -> None:
    cfg, counters = run.config, run.counters
    begin_online_phase(run)
    progress = PhaseProgress(run.console, "online env steps", cfg.online_steps, counters.online_done)
    evaluate_at_start(run)
    while counters.online_done < cfg.online_steps:
        before = counters.online_done
        length, success = collect_episode(run)
        metrics = gradient_steps(run, online_updates(cfg, before, length))
        end_episode(run, before, length, success, metrics)
        progress.update(counters.online_done, metrics)
    progress.close()


# Gradient steps


def gradient_steps(run: Run, count: int) -> dict[str, float]:
    """`count` gradient steps in scanned calls of updates_per_call (the last one padded with
    inactive steps, so one compiled shape serves any count); their mean metrics."""
    size = run.config.updates_per_call
    total: defaultdict[str, float] = defaultdict(float)
    for start in range(0, count, size):
        active = np.arange(size) < count - start
        with Timer(run.timers, "sample"):
            batches = sample_batches(run, size)
        with Timer(run.timers, "update"):
            # The call returns before XLA has finished: wait here, or the update's time would be
            # counted wherever its metrics are first read (mean_metrics, outside every timer).
            run.state, metrics = jax.block_until_ready(
                update(run.state, jax.device_put(batches), jax.device_put(active))
            )
        add_weighted(total, mean_metrics(metrics), active, count)
    return count_steps(run, total, count)


def sample_batches(run: Run, size: int) -> Transitions:
    """`size` batches: mixing_ratio of each from the offline data, the rest from the online buffer."""
    cfg = run.config
    return sample_stack(run.rng, run.offline, run.buffer, size, cfg.batch_size, cfg.mixing_ratio)


def add_weighted(total: dict, metrics: dict[str, float], active: np.ndarray, count: int) -> None:
    """Add one call's mean metrics, weighted by its share of the `count` steps."""
    for key, value in metrics.items():
        total[key] += value * active.sum() / max(count, 1)


def count_steps(run: Run, total: dict, count: int) -> dict[str, float]:
    """Count `count` gradient steps done; the metrics row of those steps."""
    run.counters.gradient_steps += count
    return {**total, "gradient_steps": run.counters.gradient_steps, "calibrated": float(run.state.calibrate)}


# Offline


def offline_eval_every(config: TrainConfig) -> int:
    return config.offline_eval_every or max(config.offline_steps, 1)


def offline_chunk(config: TrainConfig, done: int) -> int:
    """Gradient steps until the next evaluation, checkpoint or the phase's end (at most 10 calls)."""
    every = offline_eval_every(config)
    boundaries = [every - done % every, config.offline_steps - done, config.updates_per_call * 10]
    if config.checkpoint_every:
        boundaries.append(config.checkpoint_every - done % config.checkpoint_every)
    return min(boundaries)


def end_offline_chunk(run: Run, chunk: int, metrics: dict) -> None:
    """Record a chunk of `chunk` offline steps, then evaluate and checkpoint when due."""
    cfg, counters = run.config, run.counters
    before = counters.offline_done
    counters.offline_done += chunk
    done = counters.offline_done
    record_training(run, row_phase(OFFLINE, "train"), done, metrics)
    if done % offline_eval_every(cfg) == 0 or done == cfg.offline_steps:
        counters.offline_result = evaluate_policy(run, "offline", done)
    if due(done, before, cfg.checkpoint_every) or done == cfg.offline_steps:
        save_run(run)


def end_offline_phase(run: Run) -> None:
    """Without offline steps, the initial policy's evaluation stands for the pre-trained one."""
    if run.counters.offline_result is None:
        run.counters.offline_result = evaluate_policy(run, "offline", 0)


# Online


def begin_online_phase(run: Run) -> None:
    """The online environment and buffer (a resumed online run has them already)."""
    if run.env is None:
        start_online(run)


def evaluate_at_start(run: Run) -> None:
    """The pre-trained policy at online step 0, before the first online transition."""
    counters = run.counters
    counters.final_result = counters.final_result or counters.offline_result
    if counters.online_done == 0 and counters.next_eval == 0:
        evaluate_online(run)


def online_updates(config: TrainConfig, before: int, length: int) -> int:
    """Gradient steps after an episode of `length` steps that began at online step `before`:
    len * UTD, none while the warm-up lasts (WSRL: every episode that begins before
    --warmup-steps is the frozen pre-trained policy's; docs/algorithm.md section 5.7)."""
    return 0 if before < config.warmup_steps else length * config.utd


def collect_episode(run: Run) -> tuple[int, bool]:
    """One episode of the stochastic policy into the online buffer, with its G: (length, success)."""

    def explore(observation):
        action, run.act_key = sample_action(run.state.actor, observation, run.act_key)
        return np.asarray(action)

    env, buffer = run.env, run.buffer
    assert env is not None and buffer is not None  # begin_online_phase made them
    with Timer(run.timers, "environment"):
        episode = run_episode(env, explore)
    task = run.task
    rewards = transform_rewards(episode.rewards, task.reward_scale, task.reward_bias)
    transitions = episode_transitions(
        episode.observations,
        episode.actions,
        rewards,
        episode.next_observations,
        episode.terminated,
        task.return_rule(run.config.agent.discount),
        stack=task.frame_stack,
    )
    buffer.add(transitions)
    run.counters.online_successes.append(episode.success)
    run.counters.online_done += transitions.size
    return transitions.size, episode.success


def end_episode(run: Run, before: int, length: int, success: bool, metrics: dict) -> None:
    """Record an episode's updates (the run was at online step `before`), then evaluate and
    checkpoint when due."""
    cfg, counters = run.config, run.counters
    record_training(
        run,
        row_phase(ONLINE, "train"),
        counters.online_done,
        {**metrics, "episode_success": float(success), "episode_length": length},
    )
    if counters.online_done >= counters.next_eval or counters.online_done >= cfg.online_steps:
        evaluate_online(run)
    if due(counters.online_done, before, cfg.checkpoint_every) or counters.online_done >= cfg.online_steps:
        save_run(run)


def evaluate_online(run: Run) -> None:
    counters = run.counters
    counters.final_result = evaluate_policy(run, "online", counters.online_done)
    counters.next_eval = next_eval_step(run.config, counters.online_done)


def next_eval_step(config: TrainConfig, done: int) -> int:
    """The first nominal evaluation step after `done` online steps (the end if none is left)."""
    steps = online_eval_steps(config.online_steps, config.eval_every, config.start_evals, config.start_eval_fraction)
    return next((step for step in steps if step > done), config.online_steps)


# Recording and evaluating


def due(done: int, before: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, done]."""
    return every > 0 and done // every > before // every


def record_training(run: Run, phase: str, step: int, metrics: dict) -> None:
    """Log a training record (TrainingDiverged instead if its losses or the parameters are not
    finite) and warn once, in one line, if the Lagrange multiplier runs away."""
    check_finite(run.state, metrics, where_in_training(phase, step), run.checkpoints, run.log.path)
    run.log.record(phase, step, metrics)
    if run.lagrange_watch is None or "critic/cql_multiplier" not in metrics:
        return
    warning = run.lagrange_watch.observe(
        int(metrics["gradient_steps"]), metrics["critic/cql_gap"], metrics["critic/cql_multiplier"]
    )
    if warning:
        run.console.print(
            f"{warning} (seed {run.config.seed})", markup=False, highlight=False, style="yellow", soft_wrap=True
        )
        run.counters.warnings.append(warning)


def evaluate_policy(run: Run, phase: str, step: int) -> dict:
    """Deterministic episodes on the evaluation environment and the calibration diagnostic
    (against the true Monte-Carlo returns); logged, reported and returned as one row."""
    with Timer(run.timers, "evaluate"):
        actor = run.state.actor
        policy = lambda obs: np.asarray(deterministic_action(actor, obs))  # noqa: E731
        episodes, score_key = run.config.eval_episodes, run.task.score_reward_info
        if run.config.eval_lockstep:
            if not run.eval_copies:
                run.eval_copies = [run.task.make_env(None) for _ in range(episodes)]
            result = evaluate_lockstep(run.eval_env, run.eval_copies, policy, score_key)
        else:
            result = evaluate(run.eval_env, policy, episodes, score_key)
        result["normalized_score"] = float(run.task.normalized_score(result.pop("score_return")))
        result.update(mean_metrics(calibration_stats(run.state, run.calibration_batch)))
        if run.counters.online_successes:
            result["cumulative_regret"] = 1.0 - float(np.mean(run.counters.online_successes))
    row = run.log.record(row_phase(phase, "eval"), step, result)
    run.report({**row, "seed": run.config.seed})
    return row
