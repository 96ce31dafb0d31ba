"""Visual manipulation: what MuJoCo's offscreen rendering costs (docs/algorithm.md section 10).

    MUJOCO_GL=egl python benchmarks/visual_manipulation.py [--domain cube-single] [--frames 100] [--transitions 200]

Prints, for OGBench's visual single-task environment of the domain: frames/s of its 64x64 camera
alone (the frame as OGBench renders it, shadows on) and with the shadows off (what the 4096-pixel
shadow map costs, for comparison only: calql keeps OGBench's rendering, so that its frames match
OGBench's published visual datasets); environment steps/s of the visual and of the state task
with random actions; and transitions/s of calql's generator of visual play data (oracles, frames
and relabelling; environment construction excluded).
"""

import argparse
import os
import platform
import time

import numpy as np

from calql.envs import manipulation, visual_manipulation


def rate(count: int, work) -> float:
    """Calls of `work` per second over `count` calls."""
    start = time.perf_counter()
    for _ in range(count):
        work()
    return count / (time.perf_counter() - start)


def render_rates(domain: str, frames: int) -> tuple[float, float]:
    """(frames/s with OGBench's shadows, frames/s without) of the task's camera."""
    env = visual_manipulation.make_env(domain, seed=0)
    base = env.unwrapped
    with_shadows = rate(frames, base.render)
    casts = base._model.light_castshadow.copy()
    base._model.light_castshadow[:] = 0
    without = rate(frames, base.render)
    base._model.light_castshadow[:] = casts
    env.close()
    return with_shadows, without


def step_rate(make_env, steps: int) -> float:
    env = make_env(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 5)).astype(np.float32)
    index = iter(range(steps))

    def step():
        _, _, terminated, truncated, _ = env.step(actions[next(index)])
        if terminated or truncated:
            env.reset()

    steps_per_second = rate(steps, step)
    env.close()
    return steps_per_second


def generation_rate(domain: str, transitions: int) -> float:
    """Transitions/s of the visual play-data generator, the environment built before the clock starts."""
    spec, length = manipulation.domain_spec(domain), visual_manipulation.EPISODE_LENGTH
    env = visual_manipulation.make_play_env(domain, length)
    start = time.perf_counter()
    episodes = manipulation.play_episodes(env, spec, transitions, 0, length, False)
    played = time.perf_counter() - start
    env.close()
    start = time.perf_counter()
    manipulation.relabelled(domain, episodes, np.uint8)
    return transitions / (played + time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", default="cube-single", choices=sorted(manipulation.DOMAINS))
    parser.add_argument("--frames", type=int, default=100, help="frames / steps timed per figure")
    parser.add_argument("--transitions", type=int, default=200, help="transitions generated for the last figure")
    options = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} CPUs, MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with_shadows, without = render_rates(options.domain, options.frames)
    size = visual_manipulation.IMAGE_SIZE
    print(f"render {size}x{size}: {with_shadows:.1f} frames/s as OGBench renders ({without:.1f} without shadows)")
    visual = step_rate(lambda seed: visual_manipulation.make_env(options.domain, seed), options.frames)
    state = step_rate(lambda seed: manipulation.make_env(options.domain, seed), options.frames)
    print(f"env steps/s: visual-{options.domain} {visual:.1f}, {options.domain} (states) {state:.1f}")
    generated = generation_rate(options.domain, options.transitions)
    print(f"generation: {generated:.1f} visual transitions/s ({options.transitions} transitions)")


if __name__ == "__main__":
    main()
