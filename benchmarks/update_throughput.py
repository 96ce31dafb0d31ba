"""Gradient updates per second of calql's scanned update, medians over timed windows after
compilation, for the AntMaze configuration of ALGORITHM.md and the built-in task's.

Also prints the FLOPs of one update (XLA's cost analysis) and the achieved rate as a
fraction of this machine's fp32 matrix-multiply rate measured in the same run.

    python benchmarks/update_throughput.py [--windows 5] [--updates-per-call 20]
"""

import argparse
import dataclasses
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from calql.agent.state import create_agent
from calql.agent.update import update, update_step
from calql.config import PRESETS, AgentConfig
from calql.data.transitions import Transitions


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    obs_dim: int
    action_dim: int
    agent: AgentConfig
    batch_size: int = 256


SETTINGS = [
    Setting("antmaze (obs 29, act 8, critic 4x256, policy 2x256)", 29, 8, PRESETS["antmaze"].agent),
    Setting("default pointmaze (obs 4, act 2, critic/policy 2x64)", 4, 2, PRESETS["pointmaze"].agent),
]


def random_batches(obs_dim: int, action_dim: int, num: int, batch_size: int) -> Transitions:
    rng = np.random.default_rng(0)
    shape = (num, batch_size)
    return Transitions(
        rng.normal(size=shape + (obs_dim,)).astype(np.float32),
        rng.uniform(-0.99, 0.99, shape + (action_dim,)).astype(np.float32),
        rng.normal(size=shape).astype(np.float32),
        rng.normal(size=shape + (obs_dim,)).astype(np.float32),
        np.zeros(shape, np.float32),
        rng.normal(size=shape).astype(np.float32),
    )


def flops_per_update(state, batch) -> float:
    """XLA's FLOP count of one gradient step (the scanned call's loop body is counted once,
    so the single step is analysed on its own)."""
    cost = jax.jit(update_step).lower(state, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", np.nan))


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """Achieved fp32 matrix-multiply FLOP/s of this machine (jax, square matrices)."""
    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times))


def measure(setting: Setting, windows: int, updates_per_call: int, calls_per_window: int) -> dict:
    state = create_agent(jax.random.PRNGKey(0), setting.obs_dim, setting.action_dim, setting.agent)
    batches = jax.device_put(random_batches(setting.obs_dim, setting.action_dim, updates_per_call, setting.batch_size))
    active = jax.device_put(np.ones(updates_per_call, bool))
    start = time.perf_counter()
    state, _ = update(state, batches, active)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - start
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(calls_per_window):
            state, metrics = update(state, batches, active)
        jax.block_until_ready(metrics)
        rates.append(updates_per_call * calls_per_window / (time.perf_counter() - start))
    return {"rate": float(np.median(rates)), "rates": rates, "compile_s": compile_s,
            "flops": flops_per_update(state, jax.tree.map(lambda x: x[0], batches))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--updates-per-call", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, devices {jax.devices()}, jax {jax.__version__}")
    peak = matmul_rate()
    print(f"fp32 matmul rate (2048^3, jax): {peak / 1e9:.1f} GFLOP/s")
    for setting in SETTINGS:
        # Small networks get more calls per window so each window lasts about a second or more.
        calls = 1 if setting.agent.critic_hidden_dims[0] >= 256 else 10
        result = measure(setting, args.windows, args.updates_per_call, calls)
        achieved = result["rate"] * result["flops"]
        print(
            f"{setting.name}: {result['rate']:.2f} updates/s (median of {args.windows} windows: "
            f"{', '.join(f'{r:.2f}' for r in result['rates'])}); compile {result['compile_s']:.1f} s; "
            f"{result['flops'] / 1e9:.2f} GFLOP/update -> {achieved / 1e9:.1f} GFLOP/s = "
            f"{100 * achieved / peak:.0f}% of the matmul rate"
        )


if __name__ == "__main__":
    main()
