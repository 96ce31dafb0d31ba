"""Loading and preparing a million transitions, and what they take in memory.

Writes a D4RL-layout HDF5 file of `--transitions` AntMaze-shaped rows (observation 29, action 8,
trajectories of 1,000 steps ending in a time-out, a sparse reward) into a temporary folder, then
times what `calql train --task antmaze-umaze --dataset FILE` does before its first update
(`calql.training.run.load_offline_data`: read, check against the environment's spaces, reward
transform, trajectory ends, Monte-Carlo returns), split into its parts; and prints the bytes of the
offline data as the learner holds it and of an online replay buffer of the same capacity.

    python benchmarks/scale.py [--transitions 1000000]
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

import calql
from calql.data.replay import OnlineBuffer, offline_transitions
from calql.data.returns import trajectory_ends, transform_rewards
from calql.envs.binding import bind
from calql.envs.tasks import get_task
from calql.training.run import load_offline_data

OBS_DIM, ACTION_DIM, EPISODE = 29, 8, 1_000


def write_d4rl_file(path: Path, transitions: int, seed: int = 0) -> None:
    """An AntMaze-shaped D4RL file: random observations and actions in bounds, one success per
    tenth trajectory at its last step (reward 1, terminal), time-outs elsewhere at 1,000 steps."""
    rng = np.random.default_rng(seed)
    steps = np.arange(transitions)
    last_step = steps % EPISODE == EPISODE - 1
    success = last_step & ((steps // EPISODE) % 10 == 0)
    with h5py.File(path, "w") as file:
        file["observations"] = rng.normal(size=(transitions, OBS_DIM)).astype(np.float32)
        file["actions"] = rng.uniform(-0.99, 0.99, (transitions, ACTION_DIM)).astype(np.float32)
        file["rewards"] = success.astype(np.float32)
        file["terminals"] = success
        file["timeouts"] = last_step & ~success


def _timed(parts: dict, name: str, function):
    start = time.perf_counter()
    result = function()
    parts[name] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "antmaze-like.hdf5"
        parts: dict[str, float] = {}
        _timed(parts, "write the file (not part of loading)", lambda: write_d4rl_file(path, args.transitions))
        config = calql.config_for("antmaze-umaze", dataset=str(path), dataset_size=args.transitions)
        task = bind(get_task(config.task), config.dataset)
        start = time.perf_counter()
        offline, _ = load_offline_data(task, config)
        total = time.perf_counter() - start
        # The same steps again one by one, to split the total (the file is in the page cache now).
        raw = _timed(parts, "read and check", lambda: task.load_dataset(config.dataset_size, config.dataset_seed))
        rewards = _timed(
            parts, "reward transform", lambda: transform_rewards(raw["rewards"], task.reward_scale, task.reward_bias)
        )
        keys = ("terminals", "timeouts", "observations", "next_observations")
        ends = _timed(parts, "trajectory ends", lambda: trajectory_ends(*(raw[key] for key in keys)))
        rule = task.return_rule(config.agent.discount)
        _timed(
            parts,
            "transitions and Monte-Carlo returns",
            lambda: offline_transitions(
                raw["observations"], raw["actions"], rewards, raw["next_observations"], raw["terminals"],
                raw["timeouts"], rule, ends,
            ),
        )  # fmt: skip
    offline_bytes = sum(np.asarray(field).nbytes for field in offline)
    buffer = OnlineBuffer(offline.size, OBS_DIM, ACTION_DIM)
    buffer_bytes = sum(field.nbytes for field in buffer.data)
    print(f"{offline.size:,} transitions (obs {OBS_DIM}, action {ACTION_DIM}) loaded and prepared in {total:.2f} s")
    for name, seconds in parts.items():
        print(f"  {name}: {seconds:.2f} s")
    per_row = offline_bytes / offline.size
    print(f"offline data as the learner holds it: {offline_bytes / 2**20:.0f} MiB ({per_row:.0f} B/row)")
    print(f"online replay buffer of the same capacity: {buffer_bytes / 2**20:.0f} MiB")
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
