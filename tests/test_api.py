"""The Python API: the README's example runs as written, a loaded policy acts within its action
space, bad options get one-line errors naming them as the command line does, and a config and
its `calql train` command line say the same thing."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import calql
from calql.envs.tasks import UnknownTaskError
from calql.errors import CalqlError
from calql.options import command_line, parse_train_args, train_overrides

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The first Python code block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README example's variables after running it in a fresh folder (runs/ goes there)."""
    namespace: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("readme"))
        exec(compile(readme_example(), str(README), "exec"), namespace)
        namespace["cwd"] = Path.cwd()
    return namespace


def test_the_readme_example_runs(readme_run):
    result = readme_run["result"]
    run_dir = readme_run["cwd"] / result.run_dir  # the example ran in its own folder
    assert run_dir.parent == readme_run["cwd"] / "runs" and (run_dir / "summary.json").is_file()
    assert 0.0 <= result.final["success"] <= 1.0
    success = calql.evaluate(run_dir, episodes=2).success
    assert success.low <= success.mean <= success.high


def test_a_loaded_policy_acts_within_its_action_space(readme_run):
    import jax

    policy, env = readme_run["policy"], readme_run["env"]
    space = env.action_space
    observation, _ = env.reset(seed=1)
    action = policy.act(observation)
    assert isinstance(action, np.ndarray) and action.shape == space.shape
    assert np.all(action >= space.low) and np.all(action <= space.high)
    batch = policy.act(np.stack([observation] * 3))
    assert batch.shape == (3, *space.shape) and np.allclose(batch[0], action)
    sampled = policy.act(observation, deterministic=False, key=jax.random.PRNGKey(0))
    assert sampled.shape == space.shape and np.all(np.abs(sampled) <= 1.0)
    with pytest.raises(CalqlError, match="needs key="):
        policy.act(observation, deterministic=False)
    assert policy.config.task == "pointmaze-umaze" and policy.make_env(0).action_space == space


@pytest.mark.parametrize(
    "task, overrides, message",
    [
        ("pointmaze-umaze", {"offline_stepz": 5}, "--offline-stepz = 5: no such option; did you mean --offline-steps?"),
        ("pointmaze-umaze", {"offline_steps": "many"}, "--offline-steps = 'many': expected an integer"),
        ("pointmaze-umaze", {"mixing_ratio": True}, "--mixing-ratio = True: expected a number"),
        ("pointmaze-umaze", {"algo": "sac"}, "--algo = 'sac': expected one of calql, cql, iql, rlpd"),
        (
            "pointmaze-umaze",
            {"agent": {"critic_hidden_dims": [1.5]}},
            "--agent.critic-hidden-dims = [1.5]: expected a list of integers",
        ),
        (
            "pointmaze-umaze",
            {"agent": {"cql_lagrang": False}},
            "--agent.cql-lagrang = False: no such option; did you mean",
        ),
        ("pointmaze-umaze", {"offline_steps": -1}, "--offline-steps must be >= 0, got -1"),
        ("pointmaze-umaze", {"preset": "nope"}, "--preset: unknown preset 'nope'; accepted: antmaze"),
    ],
)
def test_config_for_names_the_bad_option_in_one_line(task, overrides, message):
    with pytest.raises(calql.ConfigError) as error:
        calql.config_for(task, **overrides)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_config_for_starts_from_the_tasks_preset():
    with pytest.raises(UnknownTaskError, match="--task: unknown task 'nope'; accepted: pointmaze-large"):
        calql.config_for("nope")
    assert calql.config_for("antmaze-umaze") == dataclasses.replace(calql.PRESETS["antmaze"], task="antmaze-umaze")
    config = calql.config_for("pointmaze-umaze", preset="antmaze", mixing_ratio=1, agent={"critic_hidden_dims": [8, 8]})
    assert config.mixing_ratio == 1.0 and isinstance(config.mixing_ratio, float)
    assert config.agent.critic_hidden_dims == (8, 8)
    assert config.agent.cql_lagrange == calql.PRESETS["antmaze"].agent.cql_lagrange  # the rest of the agent kept
    whole = calql.AgentConfig(num_critics=4)
    assert calql.config_for("pointmaze-umaze", agent=whole).agent == whole


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"algo": "cql", "seed": 7, "offline_steps": 123, "mixing_ratio": 0.25, "tensorboard": False},
        {
            "preset": "antmaze",
            "calibrate_online": False,
            "filter_dataset": False,
            "dataset": "x.hdf5",
            "seeds": (0, 1),
            "agent": {
                "critic_hidden_dims": (8, 8),
                "cql_lagrange": False,
                "cql_clip_diff_min": -2.5,
                "layer_norm": True,
                "tau": 1e-3,
            },
        },
    ],
)
def test_a_configs_command_line_parses_back_to_it(overrides):
    config = calql.config_for("pointmaze-umaze", **overrides)
    assert parse_train_args(command_line(config)) == config


def test_command_line_options_become_overrides():
    args = [
        "--offline-steps",
        "2000",
        "--agent.no-cql-lagrange",
        "--agent.critic-hidden-dims",
        "8",
        "8",
        "--no-tensorboard",
        "--mixing-ratio=0.25",
        "--preset",
        "antmaze",
    ]
    assert train_overrides(args) == {
        "offline_steps": 2000,
        "agent": {"cql_lagrange": False, "critic_hidden_dims": (8, 8)},
        "tensorboard": False,
        "mixing_ratio": 0.25,
        "preset": "antmaze",
    }
    with pytest.raises(calql.ConfigError, match="--offline-steps = 'x': not accepted by calql train"):
        train_overrides(["--offline-steps", "x"])


def test_import_calql_loads_neither_jax_nor_mujoco():
    code = (
        "import sys, calql; calql.TrainConfig; calql.PRESETS; "
        "print(sorted({'jax', 'mujoco', 'tyro'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
