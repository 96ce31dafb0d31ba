"""calql: Cal-QL (calibrated offline RL pre-training + online fine-tuning) in JAX.

Nakamoto et al., "Cal-QL: Calibrated Offline RL Pre-Training for Efficient Online
Fine-Tuning", NeurIPS 2023. CQL is the same code with the calibration switched off.

The Python API (calql.api): config_for, train, train_seeds, evaluate, load_agent, and
TrainConfig, AgentConfig, PRESETS, ConfigError. The names load on first use, so `import calql`
stays quick (JAX and MuJoCo load with calql.train and friends, not before).
"""

import importlib

from calql.version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it the same)

_LAZY = {
    **dict.fromkeys(("config_for", "train", "train_seeds", "evaluate", "load_agent", "RunResult"), "calql.api"),
    **dict.fromkeys(("Policy", "Evaluation", "Estimate"), "calql.evaluation"),
    **dict.fromkeys(("TrainConfig", "AgentConfig", "PRESETS", "ConfigError"), "calql.config"),
}
"""Public name -> the module that defines it."""
__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # what editors and type checkers see; re-exported through __all__ and __getattr__
    from calql.api import RunResult, config_for, evaluate, load_agent, train, train_seeds  # noqa: F401
    from calql.config import PRESETS, AgentConfig, ConfigError, TrainConfig  # noqa: F401
    from calql.evaluation import Estimate, Evaluation, Policy  # noqa: F401


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'calql' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
