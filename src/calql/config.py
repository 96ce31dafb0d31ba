"""Configuration: frozen dataclasses documented per field (tyro turns them into --help).

`AgentConfig` holds the learner's hyperparameters (docs/algorithm.md sections 2, 3 and 6);
`TrainConfig` the offline-to-online loop's (section 5). `PRESETS` are the paper's
per-domain settings plus a small one for the built-in PointMaze task.
"""

import dataclasses
import difflib
import math
import types
import typing
from typing import Literal

from calql.errors import CalqlError

Algo = Literal["calql", "cql", "iql", "rlpd"]
ALGOS: tuple[Algo, ...] = typing.get_args(Algo)
"""The learners `--algo` chooses (docs/algorithm.md sections 1, 2.9 and 2.10)."""


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Networks, losses and optimisers of Cal-QL / CQL (and IQL, docs/algorithm.md section 2.9)."""

    critic_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)
    """Hidden layer widths of each critic (Q) network."""
    policy_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the tanh-Gaussian policy network."""
    num_critics: int = 2
    """Number of critics in the ensemble (targets use the minimum over all of them, or over --agent.num-min-qs)."""
    num_min_qs: int = 0
    """Critics the Bellman target takes its minimum over, a new random subset of the target critics
    at every step (REDQ's M; RLPD: 2 of 10); 0: all of them. Not read by --algo iql."""
    layer_norm: bool = False
    """LayerNorm after each hidden layer (not in the paper; later offline-to-online work finds it helps)."""
    orthogonal_init: bool = True
    """Orthogonal init (gain sqrt(2) hidden, 1e-2 output) as the authors; False = flax defaults."""
    discount: float = 0.99
    """Discount factor gamma (also used for the Monte-Carlo returns)."""
    tau: float = 5e-3
    """Soft target-network update rate, applied every gradient step."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics (and of the CQL Lagrange multiplier)."""
    policy_lr: float = 1e-4
    """Adam learning rate of the policy (and of the entropy temperature)."""
    num_sampled_actions: int = 10
    """K: actions sampled per state for the max backup and each CQL action set."""
    max_target_backup: bool = True
    """Bellman target from the max over K sampled next actions (authors' default)."""
    backup_entropy: bool = False
    """Subtract alpha * log pi(a'|s') in the Bellman target (only meaningful without max backup)."""
    cql_alpha: float = 5.0
    """CQL regulariser weight alpha ("cql_min_q_weight")."""
    cql_lagrange: bool = True
    """Tune an extra multiplier alpha' so the CQL gap tracks cql_target_action_gap."""
    cql_target_action_gap: float = 0.8
    """Target value of the CQL gap when cql_lagrange is on."""
    cql_importance_sample: bool = True
    """Importance-sampled log-sum-exp over random and policy actions (authors' default)."""
    cql_temperature: float = 1.0
    """Temperature T of the CQL log-sum-exp."""
    cql_clip_diff_min: float = -math.inf
    """Lower clip of the per-sample CQL gap (default: no clip)."""
    cql_clip_diff_max: float = math.inf
    """Upper clip of the per-sample CQL gap (default: no clip)."""
    init_log_temperature: float = 0.0
    """Initial log of the SAC entropy temperature."""
    policy_every: int = 1
    """--algo rlpd: the policy and the temperature take one Adam step every this many critic steps
    (RLPD: once per environment step, after its --utd critic steps, so equal to --utd; 1: every step)."""
    target_entropy_scale: float = 1.0
    """The temperature's target entropy is -scale * |A|: SAC's 1.0 (Cal-QL), RLPD's 0.5. Not read by --algo iql."""
    iql_expectile: float = 0.9
    """--algo iql: expectile tau of V(s)'s regression on min_j Q'_j(s, a) at dataset actions, in (0, 1);
    0.5 is the mean (SARSA), near 1 the maximum over the data's actions (AntMaze's 0.9 by default;
    per-domain values in docs/algorithm.md section 2.9)."""
    encoder_channels: tuple[int, ...] = (16, 32, 32)
    """Pixel tasks: output channels of the encoder's 3x3 convolutions (docs/algorithm.md section 10)."""
    encoder_strides: tuple[int, ...] = (2, 2, 1)
    """Pixel tasks: the stride of each of those convolutions."""
    encoder_features: int = 50
    """Pixel tasks: width of the encoder's projection (Dense, LayerNorm, tanh), the critics' and policy's input."""
    augment: bool = True
    """Pixel tasks: random-shift augmentation of training batches (DrQ: pad by --agent.shift-pad
    pixels, crop back at a random offset); never at acting or evaluation. --agent.no-augment: off."""
    shift_pad: int = 4
    """Pixel tasks: the padding (pixels) of the random shift."""
    iql_temperature: float = 1.0
    """--algo iql: inverse temperature beta of advantage-weighted regression, weights
    exp(beta (Q - V)) clipped at 100; 0 is behaviour cloning. In calql's reward units: the IQL
    authors' AntMaze beta 10 on rewards r - 1 is 1.0 here, where AntMaze rewards are 10 r - 5
    (docs/algorithm.md section 2.9)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One offline pre-training + online fine-tuning run of Cal-QL or CQL."""

    task: str = "pointmaze-umaze-narrow"
    """Task name (see `calql train --help` for the list)."""
    algo: Algo = "calql"
    """calql: with the calibration step; cql: the same learner without it; iql: implicit Q-learning
    (Kostrikov et al. 2021: expectile value, advantage-weighted policy), through the same loop; rlpd:
    online SAC with offline data (Ball et al. 2023), whose settings `rlpd_settings` applies under the
    options given (docs/algorithm.md section 2.10)."""
    seed: int = 0
    """Seed of the agent: networks, sampling, exploration, environments."""
    seeds: tuple[int, ...] = ()
    """Train several seeds at once in one process with one vmapped update (e.g. --seeds 0 1 2 3);
    each seed gets its own run directory. Overrides --seed."""
    offline_steps: int = 1_000_000
    """Gradient steps of offline pre-training."""
    online_steps: int = 1_000_000
    """Environment steps of online fine-tuning."""
    batch_size: int = 256
    """Transitions per gradient step."""
    mixing_ratio: float = 0.5
    """Fraction of each online batch drawn from the offline dataset (the rest from online data)."""
    utd: int = 1
    """Update-to-data ratio: gradient steps per online environment step."""
    warmup_steps: int = 0
    """Warm-up of fine-tuning (WSRL, Zhou et al. 2024): the first episodes, until this many online
    environment steps, are collected by the frozen pre-trained policy into the online buffer with
    no gradient step; learning starts with the episode after. They count in --online-steps and in
    the cumulative regret (they are real interactions). WSRL's recipe adds --mixing-ratio 0 (no
    offline row in any batch); 0: no warm-up (docs/algorithm.md section 5.7)."""
    reference: Literal["mc", "learned", "best"] = "mc"
    """Reference value of the Cal-QL bound on the offline data: 'mc' = Monte-Carlo returns-to-go;
    'learned' = a value network fitted to the behaviour policy's value by TD(0) on the dataset
    before pre-training (paper section 7.3); 'best' = a value network fitted to the Monte-Carlo
    returns of the best trajectories only (--reference-top-fraction), predicted for every row: a
    better-than-behaviour reference. Online episodes always use their exact returns; --algo cql and
    --algo iql have no bound and ignore it."""
    reference_steps: int = 50_000
    """Gradient steps of the learned (or best) reference's fit (critic widths and learning rate, batch size)."""
    reference_top_fraction: float = 0.2
    """--reference best: the fraction of the dataset's trajectories, ranked by their Monte-Carlo return
    at their first step, whose rows the value is fitted on (at least one trajectory; docs/algorithm.md
    section 4.8)."""
    reference_scale: float = 1.0
    """Accuracy ablation: the offline reference (whichever --reference) is multiplied by this before
    the bound uses it; the calibration diagnostic still compares with the true Monte-Carlo returns."""
    reference_noise: float = 0.0
    """Accuracy ablation: Gaussian noise added to each offline row's reference after --reference-scale,
    with this standard deviation in units of the reference's standard deviation over the dataset;
    drawn once per row from its own stream of --seed (a resumed run draws the same; docs/algorithm.md
    section 4.9)."""
    calibrate_online: bool = True
    """Keep the Cal-QL bound during fine-tuning, with online Monte-Carlo returns (authors).
    False switches it off online (CORL's behaviour)."""
    eval_every: int = 2_000
    """Evaluate every this many online environment steps (also once at online step 0, before the
    first online transition: the pre-trained policy, as the authors)."""
    start_evals: int = 20
    """Extra evaluations spread evenly over the first --start-eval-fraction of fine-tuning, where
    the "unlearning" dip lives (20 over the first 20%: every 1% of the online budget); 0: none."""
    start_eval_fraction: float = 0.2
    """The part of fine-tuning that --start-evals covers (also the window of the fine-tuning dip)."""
    offline_eval_every: int = 0
    """Evaluate every this many offline gradient steps (0: only at the end of pre-training)."""
    eval_episodes: int = 20
    """Episodes per evaluation, deterministic policy."""
    eval_lockstep: bool = False
    """Run an evaluation's episodes side by side in as many environments, one batched policy call per
    step for all of them (training/rollout.py: evaluate_lockstep): the same start states as one after
    the other, fewer and larger policy calls. Off by default: the committed experiments evaluated one
    episode after another, and a batched call can differ from a single one in float32's last bits."""
    dataset: str = ""
    """Offline data: '' = the task's default (generated for pointmaze-*, cube-single, scene, puzzle-3x3 and
    their visual-* variants; its Minari id D4RL/... otherwise), 'builtin', a local Minari id (under
    MINARI_DATASETS_PATH, never downloaded), a path to a D4RL-layout .hdf5 file, AWAC .npy files or an
    OGBench .npz file."""
    filter_dataset: bool | None = None
    """Adroit binary: the authors' filtering (drop trajectories that never succeed, cut after the last
    success, success steps terminal); None = the task's default (on for *-binary)."""
    dataset_size: int = 1_000_000
    """Transitions to generate for built-in generated datasets."""
    dataset_seed: int = 0
    """Seed of built-in generated datasets (separate from --seed, so all seeds share the data)."""
    updates_per_call: int = 100
    """Gradient steps scanned in one compiled call (a performance knob, not a hyperparameter)."""
    matmul_precision: Literal["default", "float32", "tensorfloat32", "bfloat16"] = "default"
    """Matrix-multiply precision of the compiled functions: on GPUs 'tensorfloat32' or 'bfloat16'
    trade accuracy for speed (see benchmarks/update_throughput.py --precisions); 'default' is
    the backend's choice."""
    run_dir: str = "runs"
    """Folder under which each run makes its own run directory (configuration, metrics, checkpoints)."""
    run_name: str = ""
    """Name of the run directory under --run-dir (default: TASK-ALGO-sSEED-TIME); must not exist yet."""
    resume: str = ""
    """Continue the run in this run directory from its newest good checkpoint (other options must match)."""
    checkpoint_every: int = 5_000
    """Checkpoint every this many offline gradient steps / online environment steps (0: only at phase ends)."""
    keep_checkpoints: int = 3
    """Number of most recent checkpoints kept."""
    tensorboard: bool = True
    """Write TensorBoard event files to RUN_DIR/tensorboard."""
    wandb: bool = False
    """Also log to Weights & Biases (needs `pip install wandb`; never blocks or fails the run)."""
    wandb_project: str = "calql"
    """Weights & Biases project name."""
    agent: AgentConfig = AgentConfig()


def _preset(agent: AgentConfig, **train) -> TrainConfig:
    return TrainConfig(agent=agent, **train)


# docs/algorithm.md section 6 (authors' run scripts). Reward transforms belong to the task.
# IQL's expectile and inverse temperature: the Cal-QL authors' IQL runs (docs/algorithm.md section
# 2.9), beta divided by the task's reward scale so that beta * advantage is theirs. AntMaze and the
# mazes keep the AgentConfig defaults.
_ADROIT_AGENT = AgentConfig(
    critic_hidden_dims=(512, 512, 512),
    policy_hidden_dims=(512, 512),
    cql_alpha=1.0,
    cql_lagrange=False,
    iql_expectile=0.8,
    iql_temperature=0.3,
)
# The diverse built-in mazes: AntMaze's column with networks and budgets small enough to run
# end to end on 2 CPU cores in a few minutes, and a fixed CQL weight (as the authors' Adroit
# and kitchen): with 2-D actions the gap cannot come down to AntMaze's Lagrange target 0.8
# (it levels off near 2.4 even at alpha' = 1e6), so alpha' would double every ~2k steps
# without bound (probe in docs/algorithm.md section 5).
_POINTMAZE = _preset(
    AgentConfig(critic_hidden_dims=(64, 64), policy_hidden_dims=(64, 64), cql_alpha=5.0, cql_lagrange=False),
    offline_steps=10_000,
    online_steps=20_000,
    mixing_ratio=0.5,
    dataset_size=200_000,
    eval_every=2_000,
    offline_eval_every=2_000,
    eval_episodes=20,
)
# The narrow-data mazes (and the default task, pointmaze-umaze-narrow): the headline
# experiment's settings (experiments/umaze-narrow.toml, docs/results.md). alpha 50, because at
# alpha 5 CQL's critic stays above the behaviour's Monte-Carlo value on this data, so there is
# no over-pessimism for Cal-QL to correct; tau 0.05, because the goal's reward has to travel
# ~100 backups; 10k online steps with dense evaluations where the dip would be.
_POINTMAZE_NARROW = dataclasses.replace(
    _POINTMAZE,
    agent=dataclasses.replace(_POINTMAZE.agent, cql_alpha=50.0, tau=0.05),
    online_steps=10_000,
    eval_every=1_000,
    start_evals=10,
    reference_steps=10_000,
)
# The built-in pixel task (pointmaze-umaze-narrow-pixels, docs/algorithm.md section 10): the narrow
# mazes' learner on the encoder's features; DrQ's encoder and random shift, its 50 features, with a
# shift of 2 pixels (DrQ: 4 of 84, about 5%; 4 of 32 would be 12%) and 2x-wider heads for the image
# features; pre-training halved (a pixel update costs many vector ones on a CPU: benchmarks/pixel_update.py).
_VISION = dataclasses.replace(
    _POINTMAZE_NARROW,
    agent=dataclasses.replace(
        _POINTMAZE_NARROW.agent,
        critic_hidden_dims=(128, 128),
        policy_hidden_dims=(128, 128),
        encoder_channels=(16, 32, 32),
        encoder_strides=(2, 2, 1),
        encoder_features=50,
        augment=True,
        shift_pad=2,
    ),
    offline_steps=5_000,
    offline_eval_every=1_000,
    # Pixel steps are unrolled (calql.agent.update.scan_updates), so a call of U steps compiles U
    # copies of the step: 10 keeps compilation near a minute and still amortises the host's work.
    updates_per_call=10,
)
# OGBench manipulation with locally generated oracle data (~250 steps/s to generate here, so
# a smaller default dataset); otherwise AntMaze's sparse-reward settings.
_MANIPULATION = _preset(
    AgentConfig(cql_alpha=5.0, cql_lagrange=True, cql_target_action_gap=0.8, iql_temperature=10.0),
    offline_steps=1_000_000,
    online_steps=1_000_000,
    mixing_ratio=0.5,
    dataset_size=100_000,
)
# OGBench's visual manipulation (visual-cube-single, ...; docs/algorithm.md section 10): the
# manipulation critic settings on the vision preset's encoder and heads, with a shift of 4 pixels
# at 64 (DrQ's 4 of 84, about 5%). Every frame is rendered by MuJoCo offscreen, a few frames/s on
# CPUs (section 10): a small generated dataset (2k transitions) and budgets sized for that.
_VISUAL_MANIPULATION = dataclasses.replace(
    _MANIPULATION,
    agent=dataclasses.replace(
        _MANIPULATION.agent,
        critic_hidden_dims=_VISION.agent.critic_hidden_dims,
        policy_hidden_dims=_VISION.agent.policy_hidden_dims,
        encoder_channels=_VISION.agent.encoder_channels,
        encoder_strides=_VISION.agent.encoder_strides,
        encoder_features=_VISION.agent.encoder_features,
        augment=True,
        shift_pad=4,
    ),
    dataset_size=2_000,
    offline_steps=5_000,
    online_steps=10_000,
    eval_every=2_000,
    start_evals=0,  # no dense evaluations early in fine-tuning: each episode renders up to 200 frames
    offline_eval_every=5_000,
    eval_episodes=5,
    updates_per_call=_VISION.updates_per_call,  # unrolled pixel steps (see _VISION)
)
PRESETS: dict[str, TrainConfig] = {
    "antmaze": _preset(
        AgentConfig(cql_alpha=5.0, cql_lagrange=True, cql_target_action_gap=0.8),
        offline_steps=1_000_000,
        online_steps=1_000_000,
        mixing_ratio=0.5,
        eval_every=2_000,
        eval_episodes=20,
        offline_eval_every=50_000,
    ),
    # door and relocate; pen fine-tunes for 200k environment steps.
    "adroit": _preset(
        _ADROIT_AGENT,
        offline_steps=20_000,
        online_steps=1_000_000,
        mixing_ratio=0.5,
        eval_every=2_000,
        eval_episodes=20,
        offline_eval_every=2_000,
    ),
    "adroit-pen": _preset(
        _ADROIT_AGENT,
        offline_steps=20_000,
        online_steps=200_000,
        mixing_ratio=0.5,
        eval_every=2_000,
        eval_episodes=20,
        offline_eval_every=2_000,
    ),
    "kitchen": _preset(
        AgentConfig(
            critic_hidden_dims=(512, 512, 512),
            policy_hidden_dims=(512, 512, 512),
            cql_alpha=5.0,
            cql_lagrange=False,
            cql_importance_sample=False,
            iql_expectile=0.7,
            iql_temperature=0.5,
        ),
        offline_steps=500_000,
        online_steps=1_500_000,
        mixing_ratio=0.25,
        eval_every=5_000,
        eval_episodes=20,
        offline_eval_every=50_000,
    ),
    "manipulation": _MANIPULATION,
    "pointmaze": _POINTMAZE,
    "pointmaze-narrow": _POINTMAZE_NARROW,
    "vision": _VISION,
    "visual-manipulation": _VISUAL_MANIPULATION,
}


RLPD_AGENT: dict[str, typing.Any] = {
    "num_critics": 10,
    "num_min_qs": 2,
    "layer_norm": True,
    "backup_entropy": True,
    "max_target_backup": False,
    "init_log_temperature": 0.0,
    "target_entropy_scale": 0.5,
    "policy_every": 20,
    # RLPD's own Polyak rate, whatever the task's preset uses for the offline-pre-trained learners
    # (pointmaze-narrow's 0.05 is for pre-training's 10k steps; RLPD takes 20 steps per env step).
    "tau": 5e-3,
}
"""RLPD's learner (ikostrikov/rlpd: configs/rlpd_config.py, configs/sac_config.py,
rlpd/agents/sac/sac_learner.py; docs/algorithm.md section 2.10)."""
RLPD_TRAIN: dict[str, typing.Any] = {"offline_steps": 0, "mixing_ratio": 0.5, "utd": 20}
"""RLPD's loop: no pre-training, symmetric sampling, update-to-data ratio 20 (the paper's)."""


def rlpd_settings(config: TrainConfig) -> TrainConfig:
    """config (a task's preset) with RLPD's settings and --algo rlpd. The precedence, lowest first:
    the task's preset (network widths, learning rates, budgets), then these settings, then the options
    given (`calql train --algo rlpd --utd 5`, `calql.config_for(task, algo="rlpd", utd=5)`, a sweep's
    grid options), so RLPD needs no other flag and any of its settings can still be changed."""
    agent = dataclasses.replace(config.agent, **RLPD_AGENT)
    return dataclasses.replace(config, algo="rlpd", agent=agent, **RLPD_TRAIN)


def algo_defaults(config: TrainConfig, algo: str | None) -> TrainConfig:
    """The defaults of a run of `algo` from its task's preset: RLPD's settings for rlpd, the preset
    itself otherwise (and for None: the algorithm not chosen)."""
    return rlpd_settings(config) if algo == "rlpd" else config


def online_eval_steps(
    online_steps: int, eval_every: int, start_evals: int = 0, start_eval_fraction: float = 0.2
) -> list[int]:
    """The nominal online steps of the evaluations, sorted: 0 (the pre-trained policy), the
    `start_evals` dense ones over the first `start_eval_fraction` of fine-tuning, every multiple of
    `eval_every`, and the end. An evaluation due at step s runs when the episode that passes s ends."""
    if online_steps <= 0:
        return []
    window = start_eval_fraction * online_steps
    dense = {max(1, round(window * k / start_evals)) for k in range(1, start_evals + 1)} if start_evals else set()
    return sorted({0, *dense, *range(eval_every, online_steps, eval_every), online_steps})


class ConfigError(CalqlError):
    """An option value the run cannot use; the message names the option and what it accepts."""


class OptionError(ConfigError):
    """An override naming no option, or a value of the wrong type for its option. `option` is
    spelled as on the command line without the leading dashes (offline-steps, agent.layer-norm)."""

    def __init__(self, option: str, value, reason: str):
        self.option, self.value, self.reason = option, value, reason
        super().__init__(f"--{option} = {value!r}: {reason}")


def preset_config(name: str) -> TrainConfig:
    """PRESETS[name]; ConfigError listing the presets otherwise."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {name!r}; accepted: {', '.join(PRESETS)}")
    return PRESETS[name]


def option_name(field: str) -> str:
    """A field path as the command line spells it: agent.critic_hidden_dims -> agent.critic-hidden-dims."""
    return field.replace("_", "-")


def with_overrides(config: TrainConfig, overrides: dict) -> TrainConfig:
    """config with overrides applied. Keys are TrainConfig field names; agent options go in a
    nested dict, agent={"critic_hidden_dims": (64, 64)}, or as a whole AgentConfig. Values must
    have the field's type (an int is accepted for a float, a list for a tuple); OptionError
    names the first unknown option or wrongly typed value. Values are not range-checked here:
    that is `validate`'s job."""
    return _replaced(config, overrides, "")


def _replaced(instance, overrides: dict, prefix: str):
    fields = typing.get_type_hints(type(instance))
    changes = {}
    for name, value in overrides.items():
        option = option_name(prefix + name)
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"did you mean --{option_name(prefix + close[0])}?" if close else "see `calql train --help`"
            raise OptionError(option, value, f"no such option; {hint}")
        if dataclasses.is_dataclass(fields[name]) and isinstance(value, dict):
            changes[name] = _replaced(getattr(instance, name), value, f"{prefix}{name}.")
        elif _accepts(fields[name], value):
            changes[name] = _converted(fields[name], value)
        else:
            raise OptionError(option, value, f"expected {_described(fields[name])}")
    return dataclasses.replace(instance, **changes)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _accepts(kind, value) -> bool:
    """Whether value has type `kind` (a field annotation); bools are not numbers."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(_accepts(args[0], item) for item in value)
    if origin in (types.UnionType, typing.Union):
        return any(_accepts(arg, value) for arg in args)
    if kind is float:
        return _is_number(value)
    if kind is int:
        return _is_number(value) and isinstance(value, int)
    return isinstance(value, kind)


def _converted(kind, value):
    """value as the field stores it: ints as floats for float fields, sequences as tuples."""
    if kind is float:
        return float(value)
    if typing.get_origin(kind) is tuple:
        return tuple(_converted(typing.get_args(kind)[0], item) for item in value)
    return value


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "None"}


def _described(kind) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        return f"a list of {_described(args[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(map(_described, args))
    return _KIND_NAMES.get(kind, f"a {getattr(kind, '__name__', kind)}")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: TrainConfig) -> TrainConfig:
    """Reject values that cannot run, with a one-line message naming the option."""
    _check(config.algo in ALGOS, f"--algo: unknown algorithm {config.algo!r}; accepted: {', '.join(ALGOS)}")
    for name in ("offline_steps", "online_steps"):
        value = getattr(config, name)
        _check(value >= 0, f"--{name.replace('_', '-')} must be >= 0, got {value}")
    _check(
        config.reference in ("mc", "learned", "best"),
        f"--reference: unknown {config.reference!r}; accepted: mc, learned, best",
    )
    for name in (
        "batch_size",
        "utd",
        "reference_steps",
        "eval_every",
        "eval_episodes",
        "dataset_size",
        "updates_per_call",
    ):
        value = getattr(config, name)
        _check(value >= 1, f"--{name.replace('_', '-')} must be >= 1, got {value}")
    _check(config.start_evals >= 0, f"--start-evals must be >= 0, got {config.start_evals}")
    _check(
        0.0 < config.start_eval_fraction <= 1.0,
        f"--start-eval-fraction must be in (0, 1], got {config.start_eval_fraction}",
    )
    _check(config.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {config.checkpoint_every}")
    _check(config.keep_checkpoints >= 1, f"--keep-checkpoints must be >= 1, got {config.keep_checkpoints}")
    _check(config.offline_eval_every >= 0, f"--offline-eval-every must be >= 0, got {config.offline_eval_every}")
    _check(0.0 <= config.mixing_ratio <= 1.0, f"--mixing-ratio must be in [0, 1], got {config.mixing_ratio}")
    offline_rows = config.batch_size * config.mixing_ratio
    _check(
        abs(offline_rows - round(offline_rows)) < 1e-9,
        f"--batch-size {config.batch_size} x --mixing-ratio {config.mixing_ratio} = {offline_rows:g} offline rows "
        "per batch; choose values whose product is a whole number (e.g. --batch-size 256 --mixing-ratio 0.5)",
    )
    _validate_fine_tuning(config)
    _validate_reference(config)
    _validate_agent(config.agent)
    _validate_policy_every(config)
    return config


def _validate_fine_tuning(config: TrainConfig) -> None:
    """The warm-up's checks of `validate`: it is part of the online budget and must leave some of it."""
    _check(config.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {config.warmup_steps}")
    _check(
        config.warmup_steps == 0 or config.warmup_steps < config.online_steps,
        f"--warmup-steps {config.warmup_steps} must be below --online-steps {config.online_steps}: the warm-up "
        "is part of the online budget and fine-tuning needs steps after it",
    )


def _validate_policy_every(config: TrainConfig) -> None:
    """RLPD's policy steps once per environment step: --agent.policy-every is --utd (or 1), and RLPD's alone."""
    every, utd = config.agent.policy_every, config.utd
    if config.algo != "rlpd":
        _check(every == 1, f"--agent.policy-every {every}: only --algo rlpd reads it; leave it at 1")
    else:
        _check(
            every in (1, utd),
            f"--agent.policy-every {every} with --utd {utd}: RLPD's policy steps once per environment step, "
            f"after its --utd critic steps; pass --agent.policy-every {utd} (1: with every critic step)",
        )


def _validate_reference(config: TrainConfig) -> None:
    """The `--reference-*` checks of `validate`."""
    _check(
        0.0 < config.reference_top_fraction <= 1.0,
        f"--reference-top-fraction must be in (0, 1], got {config.reference_top_fraction}",
    )
    _check(
        math.isfinite(config.reference_scale),
        f"--reference-scale must be a finite number, got {config.reference_scale}",
    )
    _check(
        math.isfinite(config.reference_noise) and config.reference_noise >= 0.0,
        f"--reference-noise must be >= 0 and finite, got {config.reference_noise}",
    )


def _validate_agent(agent: AgentConfig) -> None:
    """The `--agent.*` checks of `validate`."""
    for name in ("critic_lr", "policy_lr"):
        value = getattr(agent, name)
        _check(math.isfinite(value) and value > 0.0, f"--agent.{_option(name)} must be > 0 and finite, got {value}")
    for name in ("critic_hidden_dims", "policy_hidden_dims"):
        dims = getattr(agent, name)
        _check(
            len(dims) > 0 and min(dims) >= 1,
            f"--agent.{_option(name)} needs one or more layer widths, each >= 1, got {list(dims)}",
        )
    _check(agent.num_critics >= 1, f"--agent.num-critics must be >= 1, got {agent.num_critics}")
    _check(
        0 <= agent.num_min_qs <= agent.num_critics,
        f"--agent.num-min-qs must be in [0, --agent.num-critics = {agent.num_critics}], got {agent.num_min_qs}",
    )
    _check(agent.policy_every >= 1, f"--agent.policy-every must be >= 1, got {agent.policy_every}")
    _check(
        math.isfinite(agent.target_entropy_scale),
        f"--agent.target-entropy-scale must be finite, got {agent.target_entropy_scale}",
    )
    _check(agent.num_sampled_actions >= 1, f"--agent.num-sampled-actions must be >= 1, got {agent.num_sampled_actions}")
    _check(0.0 <= agent.discount < 1.0, f"--agent.discount must be in [0, 1), got {agent.discount}")
    _check(0.0 < agent.tau <= 1.0, f"--agent.tau must be in (0, 1], got {agent.tau}")
    _check(
        math.isfinite(agent.cql_alpha) and agent.cql_alpha >= 0.0,
        f"--agent.cql-alpha must be >= 0 and finite, got {agent.cql_alpha}",
    )
    _check(agent.cql_temperature > 0.0, f"--agent.cql-temperature must be > 0, got {agent.cql_temperature}")
    _check(
        math.isfinite(agent.init_log_temperature),
        f"--agent.init-log-temperature must be finite, got {agent.init_log_temperature}",
    )
    _check(0.0 < agent.iql_expectile < 1.0, f"--agent.iql-expectile must be in (0, 1), got {agent.iql_expectile}")
    _check(
        math.isfinite(agent.iql_temperature) and agent.iql_temperature >= 0.0,
        f"--agent.iql-temperature must be >= 0 and finite, got {agent.iql_temperature}",
    )


def _option(name: str) -> str:
    return name.replace("_", "-")


def _tuples(values: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def config_from_dict(values: dict) -> TrainConfig:
    """A TrainConfig from its JSON form (lists back to tuples, nested agent config)."""
    return TrainConfig(**{**_tuples(values), "agent": AgentConfig(**_tuples(values["agent"]))})


IQL_OPTIONS = ("agent.iql_expectile", "agent.iql_temperature")
"""The options only --algo iql reads, as `differences` names them."""


def unread_options(algo: str) -> tuple[str, ...]:
    """The options `--algo ALGO` never reads, in which a resume may differ and reports need not flag
    differences: IQL's for Cal-QL and CQL (a run directory from before IQL existed has none, and a
    preset may set other values than the defaults). RLPD reads none of IQL's either."""
    return () if algo == "iql" else IQL_OPTIONS


PREDATED_OPTIONS = {"agent.num_min_qs": "0", "agent.policy_every": "1", "agent.target_entropy_scale": "1.0"}
"""Options added with RLPD, as reports read them (text), at the values that reproduce what run
directories written before them did (the minimum over all critics, SAC's target entropy -|A|)."""


def differences(a: TrainConfig, b: TrainConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """'field: a -> b' for every option (agent options as agent.NAME) that differs."""
    found = []
    for name, (x, y) in _flat_pairs(dataclasses.asdict(a), dataclasses.asdict(b)):
        if name not in ignore and x != y:
            found.append(f"{name}: {x!r} -> {y!r}")
    return found


def _flat_pairs(a: dict, b: dict, prefix: str = ""):
    for key in a:
        if isinstance(a[key], dict):
            yield from _flat_pairs(a[key], b[key], f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", (a[key], b[key])
