"""Pixel tasks: updates per second of the encoder + Cal-QL update, frames per second of the built-in
pixel task's renderer, and the replay memory of pixel transitions (docs/algorithm.md section 10).

    python benchmarks/pixel_update.py [--sizes 64 32] [--batch-size 256] [--windows 3] [--updates-per-call 10]

Updates/s: the `vision` preset's networks (encoder (16, 32, 32) strides (2, 2, 1), 50 features,
2x128 heads, 2 critics, K=10) on random uint8 images of each size, random shift on, medians over
timed windows after compilation. Memory: the bytes a FrameBuffer holds per 100k transitions of
each size (frames stored once: one frame per transition plus one per episode), measured by
filling one with 300-step episodes, and the arithmetic for 1M transitions.
"""

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from calql.agent.state import new_agent
from calql.agent.update import _skip_step, update, update_step
from calql.config import PRESETS
from calql.data.replay import FrameBuffer, episode_transitions
from calql.data.returns import ReturnRule
from calql.data.transitions import Transitions
from calql.envs import pixelmaze

EPISODE_LENGTH = 300


def random_image_batches(size: int, action_dim: int, num: int, batch_size: int) -> Transitions:
    rng = np.random.default_rng(0)
    shape = (num, batch_size)
    images = shape + (size, size, 3)
    return Transitions(
        rng.integers(0, 256, images, dtype=np.uint8),
        rng.uniform(-0.99, 0.99, shape + (action_dim,)).astype(np.float32),
        rng.normal(size=shape).astype(np.float32),
        rng.integers(0, 256, images, dtype=np.uint8),
        np.zeros(shape, np.float32),
        rng.normal(size=shape).astype(np.float32),
    )


@jax.jit
def looped_update(state, batches: Transitions, active: jax.Array):
    """The pixel update in the form every other agent's takes (calql.agent.update.scan_updates):
    a scan's while loop with a conditional per step. calql unrolls pixel steps instead."""

    def body(carry, inputs):
        batch, is_active = inputs
        return jax.lax.cond(is_active, update_step, _skip_step, carry, batch)

    return jax.lax.scan(body, state, (batches, active))


def updates_per_second(size: int, batch_size: int, per_call: int, windows: int) -> dict[str, float]:
    """Median updates/s of calql's pixel update and of the looped form, timed in alternating windows."""
    agent = new_agent("calql", jax.random.PRNGKey(0), (size, size, 3), 2, PRESETS["vision"].agent)
    batches = jax.device_put(random_image_batches(size, 2, per_call, batch_size))
    active = jnp.ones(per_call, bool)
    forms = {"update (unrolled)": update, "looped": looped_update}
    agents, rates = {}, {name: [] for name in forms}
    for name, function in forms.items():
        agents[name], _ = jax.block_until_ready(function(agent, batches, active))  # compile
    for _ in range(windows):
        for name, function in forms.items():
            start = time.perf_counter()
            agents[name], _ = jax.block_until_ready(function(agents[name], batches, active))
            rates[name].append(per_call / (time.perf_counter() - start))
    return {name: float(np.median(values)) for name, values in rates.items()}


def buffer_bytes_per_100k(size: int, transitions: int = 20_000) -> float:
    """Bytes a FrameBuffer holds for `transitions` pixel transitions, scaled to 100k."""
    buffer = FrameBuffer(transitions, (size, size, 3), 1, 2)
    frames = np.zeros((EPISODE_LENGTH + 1, size, size, 3), np.uint8)
    rule = ReturnRule(0.99)
    for _ in range(transitions // EPISODE_LENGTH):
        zeros = np.zeros(EPISODE_LENGTH)
        buffer.add(episode_transitions(frames[:-1], np.zeros((EPISODE_LENGTH, 2)), zeros, frames[1:], False, rule))
    held = sum(array.nbytes for array in buffer.arrays().values())
    return held * 100_000 / buffer.size


def renderer_frames_per_second(count: int = 20_000) -> float:
    states = np.random.default_rng(0).uniform(-1.5, 1.5, (count, 4))
    start = time.perf_counter()
    pixelmaze.render("umaze", states)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--updates-per-call", type=int, default=10)
    args = parser.parse_args()
    print(f"{platform.node()}: {jax.devices()[0].platform}, jax {jax.__version__}")
    size = pixelmaze.IMAGE_SIZE
    print(f"renderer ({size}x{size}x3, batched): {renderer_frames_per_second():,.0f} frames/s")
    for size in args.sizes:
        per_100k = buffer_bytes_per_100k(size)
        print(
            f"{size}x{size}x3: replay {per_100k / 2**30:.2f} GiB per 100k transitions "
            f"({EPISODE_LENGTH}-step episodes), 1M: {10 * per_100k / 2**30:.1f} GiB"
        )
    for size in args.sizes:
        rates = updates_per_second(size, args.batch_size, args.updates_per_call, args.windows)
        unrolled, looped = rates["update (unrolled)"], rates["looped"]
        print(
            f"{size}x{size}x3, batch {args.batch_size}: {unrolled:.2f} updates/s "
            f"(looped form {looped:.2f}: unrolled / looped = {unrolled / looped:.2f}x)"
        )


if __name__ == "__main__":
    main()
