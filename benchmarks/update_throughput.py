"""Gradient updates per second of calql's scanned update, medians over timed windows after
compilation, for the AntMaze configuration of docs/algorithm.md and the built-in task's.

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
from calql.agent.update import update, update_seeds, update_step
from calql.config import PRESETS, AgentConfig
from calql.data.transitions import Transitions


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    obs_dim: int
    action_dim: int
    agent: AgentConfig
    batch_size: int = 256
    key: str = ""


SETTINGS = [
    Setting("antmaze (obs 29, act 8, critic 4x256, policy 2x256)", 29, 8, PRESETS["antmaze"].agent, key="antmaze"),
    Setting("default pointmaze (obs 4, act 2, critic/policy 2x64)", 4, 2, PRESETS["pointmaze"].agent, key="pointmaze"),
    Setting("adroit (obs 39, act 28, critic 3x512, policy 2x512)", 39, 28, PRESETS["adroit"].agent, key="adroit"),
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
    """Achieved fp32 matrix-multiply FLOP/s of this machine (jax, square matrices, full fp32)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    f = jax.jit(lambda x: jnp.matmul(x, x, precision=jax.lax.Precision.HIGHEST))
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times))


def _agents(setting: Setting, seeds: int) -> list:
    return [
        create_agent(jax.random.PRNGKey(i), setting.obs_dim, setting.action_dim, setting.agent) for i in range(seeds)
    ]


def measure(
    setting: Setting,
    windows: int,
    updates_per_call: int,
    calls_per_window: int,
    seeds: int = 1,
    precision: str = "default",
) -> dict:
    """Median updates/s (summed over seeds) of the scanned update; seeds > 1 uses the vmapped one.

    precision: jax's default matmul precision while compiling ('default', 'float32',
    'tensorfloat32', 'bfloat16'). Also returns the final critic losses, to see its effect."""
    agents = _agents(setting, seeds)
    one = random_batches(setting.obs_dim, setting.action_dim, updates_per_call, setting.batch_size)
    if seeds == 1:
        call, state = update, agents[0]
        batches, active = jax.device_put(one), jax.device_put(np.ones(updates_per_call, bool))
    else:
        call, state = update_seeds, agents
        batches = jax.device_put(jax.tree.map(lambda x: np.stack([x] * seeds), one))
        active = jax.device_put(np.ones((seeds, updates_per_call), bool))
    with jax.default_matmul_precision(None if precision == "default" else precision):
        start = time.perf_counter()
        state, _ = call(state, batches, active)
        jax.block_until_ready(state)
        compile_s = time.perf_counter() - start
        rates = []
        for _ in range(windows):
            start = time.perf_counter()
            for _ in range(calls_per_window):
                state, metrics = call(state, batches, active)
            jax.block_until_ready(metrics)
            rates.append(seeds * updates_per_call * calls_per_window / (time.perf_counter() - start))
    flops = flops_per_update(agents[0], jax.tree.map(lambda x: x[0], jax.device_put(one)))
    return {
        "rate": float(np.median(rates)),
        "rates": rates,
        "compile_s": compile_s,
        "flops": flops,
        "td_loss": float(np.mean(metrics["critic/td_loss"])),
        "critic_loss": float(np.mean(metrics["critic/loss"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--updates-per-call", type=int, default=20)
    parser.add_argument("--calls-per-window", type=int, default=0, help="0: 1 for 256-wide networks, else 10")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="agents per call (>1: vmapped)")
    parser.add_argument(
        "--precisions", nargs="+", default=["default"], choices=["default", "float32", "tensorfloat32", "bfloat16"]
    )
    parser.add_argument("--settings", nargs="+", default=[s.key for s in SETTINGS], choices=[s.key for s in SETTINGS])
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, devices {jax.devices()}, jax {jax.__version__}")
    peak = matmul_rate(8192 if jax.default_backend() == "gpu" else 2048)
    print(f"fp32 matmul rate (jax, highest precision): {peak / 1e9:.1f} GFLOP/s")
    for setting in (s for s in SETTINGS if s.key in args.settings):
        calls = args.calls_per_window or (1 if setting.agent.critic_hidden_dims[0] >= 256 else 10)
        for seeds in args.seeds:
            for precision in args.precisions:
                result = measure(setting, args.windows, args.updates_per_call, calls, seeds, precision)
                achieved = result["rate"] * result["flops"]
                print(
                    f"{setting.name}, {seeds} seed(s), precision {precision}: {result['rate']:.2f} updates/s "
                    f"(median of {args.windows} windows: {', '.join(f'{r:.2f}' for r in result['rates'])}); "
                    f"compile {result['compile_s']:.1f} s; {result['flops'] / 1e9:.2f} GFLOP/update -> "
                    f"{achieved / 1e9:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of the matmul rate; "
                    f"final td_loss {result['td_loss']:.5g}, critic loss {result['critic_loss']:.5g}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
