"""Seconds per evaluation of the default task, its episodes one after another (calql's default) and
in lockstep (`--eval-lockstep`: one batched policy call per step for all of them), timed in
alternating rounds in one run, with the default networks and evaluation size.

The policy is a fresh agent's (deterministic, untrained): its episodes run to the 300-step time limit,
so this is the longest an evaluation of this task can take; a trained policy reaches the goal in
about 100 steps.

    python benchmarks/evaluation.py [--rounds 5] [--task pointmaze-umaze-narrow]
"""

import argparse
import time

import jax
import numpy as np

import calql
from calql.agent.acting import deterministic_action
from calql.agent.state import new_agent
from calql.envs.common import flat_width
from calql.envs.tasks import get_task
from calql.training.rollout import evaluate, evaluate_lockstep


def _timed(function) -> tuple[float, dict]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--task", default="pointmaze-umaze-narrow")
    args = parser.parse_args()
    config = calql.config_for(args.task)
    task = get_task(args.task)
    env = task.make_env(1)
    env.reset(seed=1)
    widths = flat_width(env.observation_space), flat_width(env.action_space)
    agent = new_agent(config.algo, jax.random.PRNGKey(0), *widths, config.agent)
    policy = lambda obs: np.asarray(deterministic_action(agent.actor, obs))  # noqa: E731
    episodes = config.eval_episodes
    copies = [task.make_env(None) for _ in range(episodes)]
    evaluate(env, policy, 1), evaluate_lockstep(env, copies, policy)  # compile both shapes
    sequential, lockstep = [], []
    for round_ in range(args.rounds):
        first, second = (sequential, lockstep) if round_ % 2 == 0 else (lockstep, sequential)
        for times in (first, second):
            if times is sequential:
                seconds, result = _timed(lambda: evaluate(env, policy, episodes))
            else:
                seconds, result = _timed(lambda: evaluate_lockstep(env, copies, policy))
            times.append(seconds)
    one_after_another, side_by_side = float(np.median(sequential)), float(np.median(lockstep))
    print(f"{args.task}, {episodes} episodes of {result['length']:.0f} steps, default networks, jax {jax.__version__}")
    print(f"one after another: {one_after_another:.2f} s per evaluation (rounds: {_listed(sequential)})")
    print(f"lockstep:          {side_by_side:.2f} s per evaluation (rounds: {_listed(lockstep)})")
    print(f"lockstep is {one_after_another / side_by_side:.2f}x as fast")


def _listed(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
