"""Gradient updates per second of d3rlpy's CalQL (PyTorch) at calql's hyperparameters.

Runs INSIDE the environment made by benchmarks/d3rlpy/setup.sh (torch + d3rlpy, no calql):

    ~/.cache/calql-bench/d3rlpy-venv/bin/python benchmarks/d3rlpy/update_rate.py --setting antmaze

benchmarks/compare_d3rlpy.py calls it, interleaved with calql's own measurement. Prints one
JSON line: {"setting", "updates_per_s", "windows", "torch", "d3rlpy", "threads", ...}.

What is timed (--path):
  impl  (default) `algo.impl.update(torch_batch, grad_step)`: d3rlpy's whole gradient step
        (critic + CQL/Cal-QL regulariser + Lagrange multiplier, actor, temperature, soft
        target update, and its per-step `.item()` of the metrics) on mini-batches sampled and
        converted to torch tensors before timing, returns-to-go included. This is the same
        work calql's `update_throughput.measure` times (batches already on the device).
  algo  `algo.update(transition_minibatch)`: the public per-batch method that d3rlpy's fit
        loop calls; adds the numpy -> torch conversion and the per-transition Python
        computation of the returns-to-go to each step. d3rlpy's fit loop itself (sampling,
        logging, progress bar) is never timed.

Hyperparameter mapping (calql AgentConfig -> d3rlpy CalQLConfig), docs/algorithm.md sections 2, 3, 6:
  critic / policy MLP widths -> critic_encoder_factory / actor_encoder_factory
      VectorEncoderFactory(hidden_units=...), ReLU, plus d3rlpy's own linear output heads
  num_critics 2 -> n_critics 2;  K = 10 -> n_action_samples 10;  batch 256 -> batch_size 256
  critic_lr 3e-4 -> critic_learning_rate;  policy_lr 1e-4 -> actor_learning_rate and
      temp_learning_rate;  init_log_temperature 0 -> initial_temperature 1.0
  gamma 0.99, tau 5e-3 -> gamma, tau;  max_target_backup -> max_q_backup True
      (soft_q_backup False = no entropy term in the target, as backup_entropy=False)
  CQL, d3rlpy: L_i = alpha' * conservative_weight * (mean(logsumexp - Q_i(s,a)) - alpha_threshold),
      alpha' = clamp(exp(log_alpha), 0, 1e6), log_alpha trained on -(mean_i L_i) when
      alpha_learning_rate > 0, else fixed at initial_alpha. calql: L_i = alpha' * alpha * (diff_i - gap).
    AntMaze (alpha 5, Lagrange, gap 0.8, log alpha' starts at 1, lr = critic lr):
      conservative_weight 5.0, alpha_threshold 0.8, initial_alpha e, alpha_learning_rate 3e-4
    Adroit (alpha 1, no Lagrange):
      conservative_weight 1.0, alpha_threshold 0.0, initial_alpha 1.0, alpha_learning_rate 0
  importance-sampled log-sum-exp, temperature 1, no clip: d3rlpy's only form (not configurable).
  Returns-to-go: SparseRewardTransitionPicker(failure_return = r_neg / (1 - gamma), step_reward
      = r_neg), d3rlpy's form of the sparse-reward rule of docs/algorithm.md section 4.
Differences that remain (learning dynamics, not the arithmetic per step): d3rlpy updates the
critic first and then the actor against the updated critic (the authors: one snapshot); its
Lagrange multiplier is stepped before the critic loss uses it; its temperature loss is
-(exp(log_temp) * (log pi - H*)) rather than -(log_temp * (log pi - H*)); PyTorch default init
instead of orthogonal; separate mean and log-std heads; the sparse-reward rule tests the
remaining rewards of a trajectory, not the whole trajectory.
"""

import argparse
import json
import math
import os
import statistics
import time

import d3rlpy
import numpy as np
import torch
from d3rlpy.algos import CalQLConfig
from d3rlpy.dataset import MDPDataset, SparseRewardTransitionPicker
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.models.q_functions import MeanQFunctionFactory
from d3rlpy.torch_utility import TorchMiniBatch

# shapes, networks and CQL weight of each setting; episodes up to max_episode steps
SETTINGS = {
    "antmaze": {
        "obs_dim": 29,
        "action_dim": 8,
        "critic": (256, 256, 256, 256),
        "policy": (256, 256),
        "cql_alpha": 5.0,
        "lagrange": True,
        "target_gap": 0.8,
        "max_episode": 1000,
    },
    "adroit": {
        "obs_dim": 39,
        "action_dim": 28,
        "critic": (512, 512, 512),
        "policy": (512, 512),
        "cql_alpha": 1.0,
        "lagrange": False,
        "target_gap": 0.0,
        "max_episode": 200,
    },
}
R_NEG, R_POS, GAMMA = -5.0, 5.0, 0.99  # rewards after the {-5, +5} transform of both families


def make_config(name: str) -> CalQLConfig:
    s = SETTINGS[name]
    return CalQLConfig(
        actor_learning_rate=1e-4,
        critic_learning_rate=3e-4,
        temp_learning_rate=1e-4,
        alpha_learning_rate=3e-4 if s["lagrange"] else 0.0,
        actor_encoder_factory=VectorEncoderFactory(hidden_units=list(s["policy"]), activation="relu"),
        critic_encoder_factory=VectorEncoderFactory(hidden_units=list(s["critic"]), activation="relu"),
        q_func_factory=MeanQFunctionFactory(),
        batch_size=256,
        gamma=GAMMA,
        tau=5e-3,
        n_critics=2,
        initial_temperature=1.0,
        initial_alpha=math.e if s["lagrange"] else 1.0,
        alpha_threshold=s["target_gap"],
        conservative_weight=s["cql_alpha"],
        n_action_samples=10,
        soft_q_backup=False,
        max_q_backup=True,
        compile_graph=False,  # d3rlpy compiles (torch.compile + CUDA graphs) on CUDA only
    )


def synthetic_dataset(name: str, size: int, seed: int) -> MDPDataset:
    """Random observations, actions in [-1, 1], sparse {-5, +5} rewards; episodes end either
    with a success (+5, terminal) or with a time-out at the maximum length (all -5)."""
    s = SETTINGS[name]
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(size, s["obs_dim"])).astype(np.float32)
    actions = rng.uniform(-1.0, 1.0, (size, s["action_dim"])).astype(np.float32)
    rewards = np.full((size, 1), R_NEG, np.float32)
    terminals = np.zeros(size, np.float32)
    timeouts = np.zeros(size, np.float32)
    start = 0
    while start < size:
        success = rng.random() < 0.5
        length = int(rng.integers(s["max_episode"] // 4, s["max_episode"])) if success else s["max_episode"]
        end = min(start + length, size) - 1
        if success and end == start + length - 1:
            rewards[end] = R_POS
            terminals[end] = 1.0
        else:
            timeouts[end] = 1.0
        start = end + 1
    return MDPDataset(
        observations,
        actions,
        rewards,
        terminals,
        timeouts,
        transition_picker=SparseRewardTransitionPicker(failure_return=R_NEG / (1 - GAMMA), step_reward=R_NEG),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--path", choices=["impl", "algo"], default="impl")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window-seconds", type=float, default=5.0, help="each timed window runs at least this long")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    parser.add_argument("--batches", type=int, default=16, help="distinct pre-sampled mini-batches, cycled")
    parser.add_argument("--dataset-size", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    dataset = synthetic_dataset(args.setting, args.dataset_size, args.seed)
    config = make_config(args.setting)
    algo = config.create(device="cpu:0")
    algo.build_with_dataset(dataset)
    batches = [dataset.sample_transition_batch(config.batch_size) for _ in range(args.batches)]
    if args.path == "impl":
        torch_batches = [
            TorchMiniBatch.from_batch(
                batch, gamma=config.gamma, compute_returns_to_go=algo.need_returns_to_go, device=algo._device
            )
            for batch in batches
        ]
        step = 0

        def one_update(i: int) -> None:
            nonlocal step
            algo.impl.update(torch_batches[i % len(torch_batches)], step)
            step += 1
    else:

        def one_update(i: int) -> None:
            algo.update(batches[i % len(batches)])

    i = 0
    start = time.perf_counter()
    for _ in range(args.warmup):
        one_update(i)
        i += 1
    warmup_s = time.perf_counter() - start
    rates = []
    for _ in range(args.windows):
        count, start = 0, time.perf_counter()
        while True:
            one_update(i)
            i += 1
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= args.window_seconds:
                break
        rates.append(count / elapsed)
    print(
        json.dumps(
            {
                "setting": args.setting,
                "updates_per_s": statistics.median(rates),
                "windows": rates,
                "torch": torch.__version__,
                "d3rlpy": d3rlpy.__version__,
                "threads": torch.get_num_threads(),
                "path": args.path,
                "warmup_s": warmup_s,
                "updates_timed": i - args.warmup,
            }
        )
    )


if __name__ == "__main__":
    main()
