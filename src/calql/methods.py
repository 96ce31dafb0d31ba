"""The methods that sweeps, comparisons and reports name: one place for "calql", "calql-learned",
"calql-best", "cql", the no-retention "calql-wsrl" and "cql-wsrl", "iql" and "rlpd", what each sets in a
TrainConfig, and how reports label it."""

import dataclasses

WSRL_WARMUP_STEPS = 5_000
"""WSRL's warm-up (Zhou et al. 2024; `--warmup_steps 5000` in every `launch_wsrl_finetune.sh` of
github.com/zhouzypaul/wsrl): online steps of the frozen pre-trained policy before the first update."""


@dataclasses.dataclass(frozen=True)
class Method:
    """A named way to train: an algorithm, for Cal-QL the reference value of its bound, and how
    fine-tuning treats the offline data."""

    name: str
    algo: str
    """TrainConfig.algo."""
    reference: str | None
    """TrainConfig.reference it sets; None leaves the option as it is (CQL and IQL have no bound to refer to)."""
    label: str
    """The name reports, tables and figures show."""
    warmup_steps: int | None = None
    """TrainConfig.warmup_steps it sets together with mixing_ratio 0 (WSRL's fine-tuning: no offline
    row retained after a warm-up of the frozen pre-trained policy); None leaves both as they are."""

    def overrides(self) -> dict:
        """The config overrides that select this method (for calql.config_for)."""
        reference = {"reference": self.reference} if self.reference else {}
        no_retention = {"mixing_ratio": 0.0, "warmup_steps": self.warmup_steps} if self.warmup_steps else {}
        return {"algo": self.algo} | reference | no_retention


# "calql" leaves the reference as configured: `calql compare --reference learned` keeps working.
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("calql", "calql", None, "Cal-QL"),
        Method("calql-learned", "calql", "learned", "Cal-QL (learned reference)"),
        Method("calql-best", "calql", "best", "Cal-QL (best-trajectory reference)"),
        Method("cql", "cql", None, "CQL"),
        Method("calql-wsrl", "calql", None, "Cal-QL (no retention, warm-up)", WSRL_WARMUP_STEPS),
        Method("cql-wsrl", "cql", None, "CQL (no retention, warm-up)", WSRL_WARMUP_STEPS),
        Method("iql", "iql", None, "IQL"),
        Method("rlpd", "rlpd", None, "RLPD"),  # algo "rlpd" brings RLPD's settings (config.rlpd_settings)
    )
}
"""Method name -> Method, in the order reports list them."""
COMPARED = ("calql", "cql")
"""The methods `calql compare` runs."""

_REFERENCE_METHODS = {"learned": "calql-learned", "best": "calql-best"}
"""Cal-QL's reference values that make a method of their own ("mc" is plain "calql")."""


def retains_no_data_after_warmup(config: dict) -> bool:
    """Whether a run configuration fine-tunes the WSRL way: a warm-up, then no offline rows."""
    return config.get("warmup_steps", 0) > 0 and config.get("mixing_ratio") == 0.0


def method_of(config: dict) -> str:
    """The method a run configuration (config.json's "config") trained with. A warm-up with mixing
    ratio 0 adds "-wsrl" to the name whatever the warm-up's length (calql-learned-wsrl too, a name
    this module does not list; reports show it as it is)."""
    calql = config["algo"] == "calql"
    base = _REFERENCE_METHODS.get(config.get("reference", "mc"), "calql") if calql else config["algo"]
    return f"{base}-wsrl" if retains_no_data_after_warmup(config) else base


def label(name: str) -> str:
    """The display label of a method name (the name itself for one this module does not know)."""
    return METHODS[name].label if name in METHODS else name
