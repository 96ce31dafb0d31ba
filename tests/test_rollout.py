"""Episodes and evaluation: success, returns, and the score computed from an info field."""

import gymnasium as gym
import numpy as np

from calql.training.rollout import evaluate, evaluate_lockstep, run_episode


class _CountingEnv(gym.Env):
    """Three steps; reward 1 each, info["dense"] = 10 each, success on the last step."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        return np.full(1, self.t, np.float32), 1.0, done, False, {"dense": 10.0, "success": done}


def test_episode_records_transitions_success_and_score_return():
    episode = run_episode(_CountingEnv(), lambda obs: np.zeros(1, np.float32), score_key="dense")
    assert episode.length == 3 and episode.terminated and episode.success
    assert episode.raw_return == 3.0 and episode.score_return == 30.0
    np.testing.assert_array_equal(episode.next_observations[:-1], episode.observations[1:])


def test_evaluate_uses_the_task_reward_without_a_score_key():
    result = evaluate(_CountingEnv(), lambda obs: np.zeros(1, np.float32), 2)
    assert result == {"return": 3.0, "score_return": 3.0, "success": 1.0, "length": 3.0}


class _RecordingPolicy:
    """A fixed linear policy on PointMaze's observation (x, y, vx, vy) that keeps every observation it
    acts on, one at a time or in batches."""

    def __init__(self, seed: int):
        self.weights = np.random.default_rng(seed).normal(size=(4, 2)).astype(np.float32)
        self.seen: list[np.ndarray] = []

    def __call__(self, obs):
        obs = np.array(obs, np.float32)
        self.seen.append(obs)
        # row by row: a batched product may round differently, which is not what is tested here
        return np.stack([np.tanh(row @ self.weights) for row in obs]) if obs.ndim == 2 else np.tanh(obs @ self.weights)


def _start_positions(env: gym.Env, count: int) -> list[np.ndarray]:
    return [env.reset()[0][:2].copy() for _ in range(count)]


def test_lockstep_evaluation_plays_the_sequential_episodes_and_leaves_the_env_as_they_do():
    from calql.envs.tasks import get_task

    task = get_task("pointmaze-umaze-narrow")
    sequential_env, lockstep_env = task.make_env(7), task.make_env(7)
    sequential_env.reset(seed=7), lockstep_env.reset(seed=7)
    for _ in range(2):  # the second evaluation starts where the first left the generators
        sequential, lockstep = _RecordingPolicy(3), _RecordingPolicy(3)
        expected = evaluate(sequential_env, sequential, 5)
        found = evaluate_lockstep(lockstep_env, [task.make_env(None) for _ in range(5)], lockstep)
        assert found == expected
        # every episode runs to the time limit here, so the sequential observations split evenly
        trajectories = np.stack(sequential.seen).reshape(5, -1, 4)
        np.testing.assert_array_equal(np.stack(lockstep.seen).transpose(1, 0, 2), trajectories)
        assert len({tuple(start) for start in trajectories[:, 0]}) == 5
    # the next starts drawn are the same: the generators were left as five sequential episodes leave them
    np.testing.assert_array_equal(_start_positions(sequential_env, 3), _start_positions(lockstep_env, 3))


def test_lockstep_episodes_start_apart_and_end_on_their_own():
    """Episodes of different lengths: a finished one stops stepping while the others go on."""
    from calql.envs.tasks import get_task

    task = get_task("pointmaze-umaze-narrow")
    env = task.make_env(0)
    env.reset(seed=0)
    copies = [task.make_env(None) for _ in range(4)]
    calls = []

    def policy(obs):
        calls.append(obs.shape)
        return np.zeros((len(obs), 2), np.float32)  # never reaches the goal: each episode runs to the limit

    result = evaluate_lockstep(env, copies, policy)
    assert result["success"] == 0.0 and result["length"] == env.spec.max_episode_steps
    assert set(calls) == {(4, 4)} and len(calls) == env.spec.max_episode_steps
    starts = [copy.unwrapped.point_env.data.qpos.copy() for copy in copies]
    assert len({tuple(np.round(s, 6)) for s in starts}) == 4  # standing still where each started, apart


def test_a_run_evaluated_in_lockstep_records_the_same_evaluations(tmp_path):
    """The default task's networks act bit-identically on a batch and one observation at a time,
    so --eval-lockstep changes only how a run's evaluation episodes are run, not a number."""
    import json

    import calql

    def evaluations(lockstep: bool) -> list[dict]:
        config = calql.config_for(
            "pointmaze-umaze-narrow", offline_steps=20, online_steps=0, eval_episodes=3, tensorboard=False,
            run_dir=str(tmp_path), run_name=f"lockstep-{lockstep}", eval_lockstep=lockstep,
        )  # fmt: skip
        calql.train(config)
        rows = [json.loads(line) for line in (tmp_path / config.run_name / "metrics.jsonl").open()]
        return [row for row in rows if row["phase"].endswith("/eval")]

    sequential, lockstep = evaluations(False), evaluations(True)
    assert len(sequential) == 1 and lockstep == sequential
