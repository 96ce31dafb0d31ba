"""Gradient updates per second of calql's scanned update, medians over timed windows after
compilation, for the AntMaze configuration of docs/algorithm.md and the built-in task's.

Also prints the FLOPs of one update (XLA's cost analysis) and the achieved rate as a
fraction of this machine's fp32 matrix-multiply rate measured in the same run, and with --floor
the rate of the update's network arithmetic alone (`floor_step`), timed in alternation with it.

    python benchmarks/update_throughput.py [--windows 5] [--updates-per-call 20] [--floor]
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


def floor_step(state, batch: Transitions, num_samples: int):
    """The network arithmetic of one Cal-QL/CQL gradient step and nothing else, as the floor the
    update cannot beat: the critic ensemble forward and backward at the dataset pairs and the
    3K sampled actions per state of the CQL term (random, pi(.|s), pi(.|s')), forward only at the
    K next actions of the max backup's target, the policy forward at s and s' and forward and
    backward through one critic evaluation for the actor loss, then plain SGD steps. No losses,
    sampling, log-probabilities, Lagrange or temperature, no Adam: what XLA must do for any
    implementation of this update at these sizes."""
    obs, actions, next_obs = batch.observations, batch.actions, batch.next_observations
    critic, actor = state.critic, state.actor
    repeated = jnp.repeat(obs, 3 * num_samples, axis=0)
    sampled = jnp.tanh(jnp.resize(actions, (repeated.shape[0], actions.shape[-1])) * 1.1)

    def critic_sum(params):
        q_data = critic.apply_fn(params, obs, actions)
        q_sampled = critic.apply_fn(params, repeated, sampled)
        return q_data.sum() + q_sampled.sum()

    def actor_sum(params):
        mean, _ = actor.apply_fn(params, obs)
        next_mean, _ = actor.apply_fn(params, next_obs)
        return critic.apply_fn(critic.params, obs, jnp.tanh(mean)).sum() + next_mean.sum()

    next_repeated = jnp.repeat(next_obs, num_samples, axis=0)
    target = critic.apply_fn(state.target_critic_params, next_repeated, sampled[: next_repeated.shape[0]])
    critic_grads = jax.grad(critic_sum)(critic.params)
    actor_grads = jax.grad(actor_sum)(actor.params)
    shift = 1e-6 * target.mean()  # keeps the target's forward pass from being removed as unused
    sgd = lambda params, grads: jax.tree.map(lambda p, g: p - 1e-6 * g + shift, params, grads)  # noqa: E731
    return state.replace(
        critic=critic.replace(params=sgd(critic.params, critic_grads)),
        actor=actor.replace(params=sgd(actor.params, actor_grads)),
    )


def floor_rate(setting: Setting, windows: int, updates_per_call: int, calls_per_window: int) -> list[float]:
    """Steps/s of `floor_step` scanned as the update is, one rate per window."""
    state = _agents(setting, 1)[0]
    batches = jax.device_put(random_batches(setting.obs_dim, setting.action_dim, updates_per_call, setting.batch_size))
    step = lambda s, b: (floor_step(s, b, setting.agent.num_sampled_actions), None)  # noqa: E731
    call = jax.jit(lambda s, b: jax.lax.scan(step, s, b)[0])
    state = jax.block_until_ready(call(state, batches))
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(calls_per_window):
            state = call(state, batches)
        jax.block_until_ready(state)
        rates.append(updates_per_call * calls_per_window / (time.perf_counter() - start))
    return rates


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
    parser.add_argument(
        "--floor", action="store_true", help="also time the update's network arithmetic alone (floor_step)"
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
        if args.floor:
            _print_floor(setting, args.windows, args.updates_per_call, calls)


def _print_floor(setting: Setting, windows: int, updates_per_call: int, calls: int) -> None:
    """The update and its floor timed window by window in alternation (a busy machine slows both alike)."""
    update_rates, floor_rates = [], []
    for _ in range(windows):
        update_rates.append(measure(setting, 1, updates_per_call, calls)["rate"])
        floor_rates.append(floor_rate(setting, 1, updates_per_call, calls)[0])
    update, floor = float(np.median(update_rates)), float(np.median(floor_rates))
    print(
        f"{setting.name}: update {update:.2f} updates/s, its network arithmetic alone {floor:.2f} steps/s "
        f"(medians of {windows} alternating windows): the update runs at {100 * update / floor:.0f}% of its floor",
        flush=True,
    )


if __name__ == "__main__":
    main()
