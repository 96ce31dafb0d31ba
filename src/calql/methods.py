"""The methods that sweeps, comparisons and reports name: one place for "calql", "calql-learned"
and "cql", what each sets in a TrainConfig, and how reports label it."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
    """A named way to train: an algorithm and, for Cal-QL, the reference value of its bound."""

    name: str
    algo: str
    """TrainConfig.algo."""
    reference: str | None
    """TrainConfig.reference it sets; None leaves the option as it is (CQL has no bound to refer to)."""
    label: str
    """The name reports, tables and figures show."""

    def overrides(self) -> dict:
        """The config overrides that select this method (for calql.config_for)."""
        return {"algo": self.algo} | ({"reference": self.reference} if self.reference else {})


# "calql" leaves the reference as configured: `calql compare --reference learned` keeps working.
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("calql", "calql", None, "Cal-QL"),
        Method("calql-learned", "calql", "learned", "Cal-QL (learned reference)"),
        Method("cql", "cql", None, "CQL"),
    )
}
"""Method name -> Method, in the order reports list them."""
COMPARED = ("calql", "cql")
"""The methods `calql compare` runs."""


def method_of(config: dict) -> str:
    """The method a run configuration (config.json's "config") trained with."""
    learned = config["algo"] == "calql" and config.get("reference", "mc") == "learned"
    return "calql-learned" if learned else config["algo"]


def label(name: str) -> str:
    """The display label of a method name (the name itself for one this module does not know)."""
    return METHODS[name].label if name in METHODS else name
