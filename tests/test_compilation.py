"""No recompilation after warm-up: every compiled function keeps one shape per configuration."""

from calql.agent import acting, update
from calql.options import parse_train_args
from calql.training.loop import train

TINY = [
    "--task",
    "pointmaze-umaze",
    "--offline-steps",
    "60",
    "--dataset-size",
    "3000",
    "--eval-episodes",
    "1",
    "--eval-every",
    "100",
    "--updates-per-call",
    "20",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "0",
    "--agent.critic-hidden-dims",
    "8",
    "8",
    "--agent.policy-hidden-dims",
    "8",
    "8",
    "--agent.num-sampled-actions",
    "2",
]
COMPILED = {
    "update": update.update,
    "sample_action": acting.sample_action,
    "deterministic_action": acting.deterministic_action,
    "calibration_stats": acting.calibration_stats,
}


def _cache_sizes() -> dict[str, int]:
    return {name: function._cache_size() for name, function in COMPILED.items()}


def test_a_second_longer_run_compiles_nothing_new(tmp_path):
    train(parse_train_args([*TINY, "--online-steps", "100", "--seed", "0", "--run-dir", str(tmp_path)]))
    warm = _cache_sizes()
    # Another seed, more episodes of other lengths, more evaluations: still the same compiled shapes.
    train(parse_train_args([*TINY, "--online-steps", "400", "--seed", "1", "--run-dir", str(tmp_path)]))
    assert _cache_sizes() == warm
