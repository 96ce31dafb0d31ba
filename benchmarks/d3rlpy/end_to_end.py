"""d3rlpy's CalQL through a whole calql job: offline pre-training (`fit`), then online
fine-tuning (`fit_online`) on calql's environment with offline and online data mixed, with
evaluations and checkpoints on calql's schedule; prints its wall time split into parts.

Runs INSIDE the environment made by benchmarks/d3rlpy/setup.sh (torch, d3rlpy, gymnasium,
gymnasium-robotics, mujoco; no JAX), with calql's source on PYTHONPATH: it imports only calql's
pure-Python configuration (`calql.config`) and environment registry (`calql.envs.tasks`), so
that both libraries step the very same environment code. benchmarks/end_to_end.py writes the
job file and the dataset and calls it:

    PYTHONPATH=src ~/.cache/calql-bench/d3rlpy-venv/bin/python benchmarks/d3rlpy/end_to_end.py JOB.json

JOB.json: {"config": calql TrainConfig as a dict, "dataset": .npz path, "out_dir": folder for
d3rlpy's logs and checkpoints, "threads": torch threads, "update_interval": online steps per
block of updates}. The .npz holds calql's offline rows as its loader prepares them
(observations, actions clipped to +-0.99999, raw rewards, next observations, terminals), the
trajectory ends calql's Monte-Carlo returns were computed with, and those returns. Prints one
JSON line: {"job_s", "seconds": {part: s}, "counts": {...}, "returns_max_error", ...}.

How calql's job maps onto d3rlpy's public API
  offline data   a ReplayBuffer of d3rlpy Episodes cut at calql's trajectory ends, with
                 SparseRewardTransitionPicker(failure_return, step_reward), the form of d3rlpy's
                 reproductions/finetuning/cal_ql_finetune.py; rewards stay raw and d3rlpy's
                 ConstantShiftRewardScaler applies calql's task transform (r * scale + bias) to
                 rewards and returns-to-go, offline and online. A time-out trajectory gets one
                 padding observation (its last next observation, a zero action, the failure
                 reward) so d3rlpy keeps its last transition. After the job, every row's
                 (s, a, r, s', done) and d3rlpy's return-to-go are checked against calql's.
  pre-training   fit(n_steps=offline_steps, n_steps_per_epoch=offline_eval_every) with an
                 EnvironmentEvaluator of eval_episodes on the evaluation environment per epoch:
                 calql's offline evaluations.
  fine-tuning    fit_online on calql's training environment (task.make_env(seed)) with a
                 MixedReplayBuffer: the online FIFO buffer (write_at_termination=True: whole
                 episodes only, as calql's) and the offline buffer, secondary_mix_ratio =
                 mixing_ratio; n_updates = update_interval * utd gradient steps every
                 update_interval environment steps (1000 by default, as d3rlpy's Cal-QL
                 reproduction; it must be at least the episode limit, so the online buffer
                 holds an episode before the first update).
  evaluations    d3rlpy's evaluate_qlearning_with_environment (deterministic, eval_episodes
                 episodes) on the evaluation environment (task.make_env(seed + 1)): once before
                 fit_online (calql's online step 0), then, as calql, at the end of the episode
                 that passes each of calql's nominal evaluation steps, and at the end.
  checkpoints    algo.save (d3rlpy's .d3 file, as its FileAdapter saves models) at calql's
                 checkpoint steps: every checkpoint_every offline steps and at the end of
                 pre-training; at the end of the episode that passes each multiple of
                 checkpoint_every online, and at the end. fit's own per-epoch saving is off.
  logging        d3rlpy's default FileAdapter (CSV per metric) with its per-epoch commit;
                 progress bars off (calql's run with a silent console).
  hyperparameters  `d3rlpy_config`: calql AgentConfig -> CalQLConfig field by field.

What is timed (seconds, all from this process; wrappers around d3rlpy's own calls, no
behaviour changed): dataset (reading the .npz, building the episodes and buffer), update
(algo.update: numpy -> torch, returns-to-go, gradient step), of which gradient_step
(impl.update alone), sample (mini-batch sampling), acting (sample_action while
fine-tuning), environment (training env reset/step), evaluate, checkpoint, logging
(D3RLPyLogger.add_metric and commit); the rest of job_s is d3rlpy's loop, building the
networks and set-up.

Differences from calql's job that remain (see also docs/performance.md):
  - updates come in blocks of update_interval environment steps, not after each episode; the
    same count of gradient steps per environment step, but d3rlpy stops at exactly
    online_steps while calql finishes the episode that passes it (it then has up to one
    episode more of steps and updates: the counts are printed for both);
  - a truncated online episode loses its last transition in d3rlpy's buffer (it stores no
    final next observation); the offline data are padded so none is lost there;
  - d3rlpy's evaluation returns the mean return only; calql's also computes the calibration
    diagnostic (Q on 4,096 offline rows) and the success rate;
  - d3rlpy's checkpoints hold networks and optimisers, not the replay buffer or RNG states
    (calql's are complete, for --resume);
  - learning dynamics (not the work per step): critic then actor on the updated critic;
    PyTorch default initialisation instead of orthogonal; separate mean / log-std heads;
    the temperature loss on exp(log_temp); the all-failure rule on the remaining rewards.
  - gymnasium 1.4.0 is installed under d3rlpy 2.8.1, which declares gymnasium==1.0.0, so that
    both libraries run the same environment versions (gymnasium-robotics 1.4.2, mujoco 3.11.0).
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402  (after STARTED: the imports are timed apart from the job)
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import d3rlpy  # noqa: E402
import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from d3rlpy.algos import CalQLConfig  # noqa: E402
from d3rlpy.dataset import (  # noqa: E402
    Episode,
    MixedReplayBuffer,
    SparseRewardTransitionPicker,
    create_fifo_replay_buffer,
    create_infinite_replay_buffer,
)
from d3rlpy.logging import FileAdapterFactory  # noqa: E402
from d3rlpy.logging.logger import D3RLPyLogger  # noqa: E402
from d3rlpy.metrics import EnvironmentEvaluator, evaluate_qlearning_with_environment  # noqa: E402
from d3rlpy.models.encoders import VectorEncoderFactory  # noqa: E402
from d3rlpy.models.q_functions import MeanQFunctionFactory  # noqa: E402
from d3rlpy.preprocessing import ConstantShiftRewardScaler  # noqa: E402
from d3rlpy.torch_utility import _compute_return_to_go  # noqa: E402

from calql.config import TrainConfig, config_from_dict, online_eval_steps  # noqa: E402
from calql.envs.tasks import Task, get_task  # noqa: E402

IMPORTED = time.perf_counter()
NEVER = 10**9  # fit's save_interval (in epochs) that never comes: checkpoints follow calql's steps


class Timers:
    """Seconds and calls per part; `wrap` times a function without changing what it does."""

    def __init__(self):
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed


class EpisodeEnds(gym.Wrapper):
    """The training environment with its reset/step timed; counts its steps and says whether
    the last one ended an episode."""

    def __init__(self, env: gym.Env, timers: Timers):
        super().__init__(env)
        self.reset = timers.wrap("environment", self.reset)
        self._step = timers.wrap("environment", env.step)
        self.steps, self.episode_ended = 0, False

    def step(self, action):
        result = self._step(action)
        self.steps += 1
        self.episode_ended = bool(result[2] or result[3])
        return result


# Configuration


def unsupported(agent) -> list[str]:
    """calql options d3rlpy's CalQL has no form for (the job refuses them rather than differ)."""
    problems = []
    if not agent.cql_importance_sample or agent.cql_temperature != 1.0:
        problems.append("d3rlpy's CQL term is the importance-sampled log-sum-exp at temperature 1 only")
    if math.isfinite(agent.cql_clip_diff_min) or math.isfinite(agent.cql_clip_diff_max):
        problems.append("d3rlpy does not clip the CQL gap")
    if agent.max_target_backup and agent.backup_entropy:
        problems.append("d3rlpy's max_q_backup and soft_q_backup are exclusive")
    return problems


def d3rlpy_config(config: TrainConfig, task: Task) -> CalQLConfig:
    """calql's AgentConfig (and reward transform) as d3rlpy's CalQLConfig (docs/algorithm.md 2, 3, 6)."""
    agent = config.agent
    if problems := unsupported(agent):
        raise SystemExit("error: " + "; ".join(problems))
    return CalQLConfig(
        actor_learning_rate=agent.policy_lr,
        critic_learning_rate=agent.critic_lr,
        temp_learning_rate=agent.policy_lr,
        # calql's Lagrange multiplier alpha' starts at log alpha' = 1 and learns at the critic's rate.
        alpha_learning_rate=agent.critic_lr if agent.cql_lagrange else 0.0,
        initial_alpha=math.e if agent.cql_lagrange else 1.0,
        alpha_threshold=agent.cql_target_action_gap if agent.cql_lagrange else 0.0,
        conservative_weight=agent.cql_alpha,
        actor_encoder_factory=VectorEncoderFactory(list(agent.policy_hidden_dims), use_layer_norm=agent.layer_norm),
        critic_encoder_factory=VectorEncoderFactory(list(agent.critic_hidden_dims), use_layer_norm=agent.layer_norm),
        q_func_factory=MeanQFunctionFactory(),
        batch_size=config.batch_size,
        gamma=agent.discount,
        tau=agent.tau,
        n_critics=agent.num_critics,
        initial_temperature=math.exp(agent.init_log_temperature),
        n_action_samples=agent.num_sampled_actions,
        soft_q_backup=agent.backup_entropy,
        max_q_backup=agent.max_target_backup,
        reward_scaler=ConstantShiftRewardScaler(
            shift=task.reward_bias, multiplier=task.reward_scale, multiply_first=True
        ),
        compile_graph=False,  # d3rlpy compiles (torch.compile + CUDA graphs) on CUDA only
    )


def transition_picker(config: TrainConfig, task: Task) -> SparseRewardTransitionPicker:
    """calql's all-failure rule in d3rlpy's raw-reward terms: the failure return before the
    reward scaler, which d3rlpy applies to it (-49.5 -> -500 for the maze transform)."""
    failure = task.sparse_failure_reward
    assert failure is not None, "the end-to-end job runs sparse-reward tasks"
    failure_return = (failure / (1.0 - config.agent.discount) - task.reward_bias) / task.reward_scale
    return SparseRewardTransitionPicker(failure_return=failure_return, step_reward=task.failure_reward)


# Offline data


def trajectory_bounds(ends: np.ndarray) -> list[tuple[int, int]]:
    """(first row, last row) of each trajectory, from calql's (N,) trajectory ends."""
    last_rows = np.flatnonzero(ends)
    first_rows = np.concatenate([[0], last_rows[:-1] + 1])
    return list(zip(first_rows.tolist(), last_rows.tolist()))


def episode(data, first: int, last: int, failure_reward: float) -> Episode:
    """Rows first..last as a d3rlpy Episode. A trajectory that does not end in a terminal gets
    its final next observation plus a padding action and reward (the failure reward, so the
    all-failure rule still sees only failures), since d3rlpy takes the next observation of a
    non-terminal episode's step t from step t + 1 and drops the last step otherwise."""
    rows = slice(first, last + 1)
    observations, actions, rewards = data["observations"][rows], data["actions"][rows], data["rewards"][rows]
    terminated = bool(data["terminals"][last])
    if not terminated:
        observations = np.concatenate([observations, data["next_observations"][last : last + 1]])
        actions = np.concatenate([actions, np.zeros_like(actions[:1])])
        rewards = np.concatenate([rewards, [failure_reward]])
    return Episode(observations, actions, rewards.astype(np.float32)[:, None], terminated)


def load_arrays(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return dict(arrays)


def offline_buffer(data, picker, failure_reward: float):
    episodes = [episode(data, first, last, failure_reward) for first, last in trajectory_bounds(data["ends"])]
    return create_infinite_replay_buffer(episodes=episodes, transition_picker=picker)


def row_errors(transition, data, row: int, config: CalQLConfig) -> dict[str, float]:
    """Absolute differences between d3rlpy's transition and calql's row (the next observation
    only where it is used: not after a terminal, where d3rlpy stores zeros)."""
    rtg = _compute_return_to_go(config.gamma, transition.rewards_to_go, config.reward_scaler)[0]
    terminal = bool(data["terminals"][row])
    next_error = 0.0 if terminal else np.abs(transition.next_observation - data["next_observations"][row]).max()
    return {
        "returns": abs(float(rtg) - float(data["returns"][row])),
        "observations": float(np.abs(transition.observation - data["observations"][row]).max()),
        "actions": float(np.abs(transition.action - data["actions"][row]).max()),
        "rewards": abs(float(transition.reward[0]) - float(data["rewards"][row])),
        "next_observations": float(next_error),
        "terminals": abs(transition.terminal - float(terminal)),
    }


def returns_check(buffer, data, config: CalQLConfig) -> dict:
    """Every offline row as d3rlpy sees it against calql's: the largest difference of each
    transition field and of the return-to-go (after the reward transform), and the row counts."""
    largest: defaultdict[str, float] = defaultdict(float)
    row = 0
    for trajectory in buffer.episodes:
        for index in range(trajectory.transition_count):
            for name, error in row_errors(buffer.transition_picker(trajectory, index), data, row, config).items():
                largest[name] = max(largest[name], error)
            row += 1
    return {"rows": row, "calql_rows": len(data["rewards"]), **largest}


# The schedule


class Schedule:
    """calql's evaluation and checkpoint steps of the online phase, kept by the fit_online callback."""

    def __init__(self, config: TrainConfig, env: EpisodeEnds, evaluate, save):
        self.config, self.env, self.evaluate, self.save = config, env, evaluate, save
        self.eval_steps = online_eval_steps(
            config.online_steps, config.eval_every, config.start_evals, config.start_eval_fraction
        )
        self.next_eval = next(step for step in self.eval_steps if step > 0)
        self.last_save = 0

    def __call__(self, algo, epoch: int, step: int) -> None:
        end = step == self.config.online_steps
        if (self.env.episode_ended and step >= self.next_eval) or end:
            self.evaluate(algo)
            self.next_eval = next((s for s in self.eval_steps if s > step), self.config.online_steps)
        every = self.config.checkpoint_every
        if (self.env.episode_ended and every and step // every > self.last_save // every) or end:
            self.save(algo, f"online_{step}")
            self.last_save = step


def offline_checkpoints(config: TrainConfig, save):
    """fit's per-step callback: calql's offline checkpoint steps."""

    def callback(algo, epoch: int, step: int) -> None:
        every = config.checkpoint_every
        if (every and step % every == 0) or step == config.offline_steps:
            save(algo, f"offline_{step}")

    return callback


# The job


def instrument(algo, timers: Timers) -> None:
    """Time d3rlpy's update, its gradient step and its exploration, and its logger's calls."""
    algo.update = timers.wrap("update", algo.update)
    algo.impl.update = timers.wrap("gradient_step", algo.impl.update)
    algo.sample_action = timers.wrap("acting", algo.sample_action)
    D3RLPyLogger.add_metric = timers.wrap("logging", D3RLPyLogger.add_metric)
    D3RLPyLogger.commit = timers.wrap("logging", D3RLPyLogger.commit)


def run_job(job: dict) -> dict:
    start = time.perf_counter()
    timers = Timers()
    config = config_from_dict(job["config"])
    task = get_task(config.task)
    out_dir = Path(job["out_dir"])
    torch.set_num_threads(job["threads"])
    d3rlpy.seed(config.seed)
    cal_ql = d3rlpy_config(config, task)
    picker = transition_picker(config, task)

    data = timers.wrap("dataset", load_arrays)(job["dataset"])
    offline = timers.wrap("dataset", offline_buffer)(data, picker, task.failure_reward)
    offline.sample_transition_batch = timers.wrap("sample", offline.sample_transition_batch)

    env = EpisodeEnds(task.make_env(config.seed), timers)
    eval_env = task.make_env(config.seed + 1)
    eval_env.reset(seed=config.seed + 1)
    algo = cal_ql.create(device="cpu:0")
    algo.build_with_dataset(offline)
    instrument(algo, timers)
    evaluate = timers.wrap("evaluate", lambda a: evaluate_qlearning_with_environment(a, eval_env, config.eval_episodes))

    def save(a, name: str) -> None:
        timers.wrap("checkpoint", a.save)(str(out_dir / f"model_{name}.d3"))

    evaluator = timers.wrap("evaluate", EnvironmentEvaluator(eval_env, n_trials=config.eval_episodes))
    logs = FileAdapterFactory(root_dir=str(out_dir / "logs"))
    algo.fit(
        offline,
        n_steps=config.offline_steps,
        n_steps_per_epoch=config.offline_eval_every or config.offline_steps,
        evaluators={"environment": evaluator},
        logger_adapter=logs,
        show_progress=False,
        save_interval=NEVER,
        callback=offline_checkpoints(config, save),
    )
    offline_s = time.perf_counter() - start

    online = create_fifo_replay_buffer(
        limit=config.online_steps + env.spec.max_episode_steps,
        env=env,
        transition_picker=picker,
        write_at_termination=True,
    )
    mixed = MixedReplayBuffer(online, offline, secondary_mix_ratio=config.mixing_ratio)
    mixed.sample_transition_batch = timers.wrap("sample", mixed.sample_transition_batch)
    interval = job["update_interval"]
    check_interval(config, interval, env.spec.max_episode_steps)
    evaluate(algo)  # calql's online step 0: the pre-trained policy
    algo.fit_online(
        env,
        buffer=mixed,
        n_steps=config.online_steps,
        n_steps_per_epoch=config.eval_every,
        update_interval=interval,
        n_updates=interval * config.utd,
        logger_adapter=logs,
        show_progress=False,
        save_interval=NEVER,
        callback=Schedule(config, env, evaluate, save),
    )
    job_s = time.perf_counter() - start
    check_start = time.perf_counter()
    data_check = returns_check(offline, data, cal_ql)
    return {
        "job_s": job_s,
        "check_s": time.perf_counter() - check_start,
        "offline_s": offline_s,
        "import_s": IMPORTED - STARTED,
        "seconds": dict(timers.seconds),
        "counts": {
            "updates": timers.calls["update"],
            "env_steps": env.steps,
            "online_episodes": len(online.episodes),
            "evaluations": timers.calls["evaluate"],
            "checkpoints": timers.calls["checkpoint"],
        },
        "data_check": data_check,
        "torch": torch.__version__,
        "d3rlpy": d3rlpy.__version__,
        "threads": torch.get_num_threads(),
        "update_interval": interval,
    }


def check_interval(config: TrainConfig, interval: int, episode_limit: int) -> None:
    if interval < episode_limit or config.online_steps % interval:
        raise SystemExit(
            f"error: update_interval {interval} must be >= the episode limit {episode_limit} (an episode in the "
            f"online buffer before the first update) and divide --online-steps {config.online_steps}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", type=Path, help="the job file benchmarks/end_to_end.py writes")
    args = parser.parse_args()
    job = json.loads(args.job.read_text())
    os.makedirs(job["out_dir"], exist_ok=True)
    print(json.dumps(run_job(job)), flush=True)


if __name__ == "__main__":
    main()
