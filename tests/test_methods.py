"""Method names: each one's overrides give a configuration that method_of names back, and the
names of configurations written before the new methods existed do not change."""

import dataclasses

import pytest

from calql.api import config_for
from calql.methods import COMPARED, METHODS, WSRL_WARMUP_STEPS, label, method_of


@pytest.mark.parametrize("name", list(METHODS))
def test_each_methods_configuration_is_named_back(name):
    config = config_for("pointmaze-umaze", **METHODS[name].overrides())
    assert method_of(dataclasses.asdict(config)) == name


def test_the_existing_names_map_as_before():
    old = {"algo": "calql", "mixing_ratio": 0.5}  # config.json of a run before --warmup-steps
    assert method_of(old) == "calql"
    assert method_of({**old, "reference": "mc"}) == "calql"
    assert method_of({**old, "reference": "learned"}) == "calql-learned"
    assert method_of({**old, "algo": "cql", "reference": "learned"}) == "cql"
    assert method_of({**old, "mixing_ratio": 0.0}) == "calql"  # no retention, no warm-up: the mixing sweep
    assert method_of({**old, "mixing_ratio": 0.0, "warmup_steps": 0}) == "calql"
    assert COMPARED == ("calql", "cql")
    assert [METHODS[name].overrides() for name in ("calql", "calql-learned", "cql")] == [
        {"algo": "calql"},
        {"algo": "calql", "reference": "learned"},
        {"algo": "cql"},
    ]


def test_new_names():
    wsrl = {"algo": "calql", "reference": "mc", "mixing_ratio": 0.0, "warmup_steps": 1000}
    assert method_of(wsrl) == "calql-wsrl"  # whatever the warm-up's length
    assert method_of({**wsrl, "algo": "cql"}) == "cql-wsrl"
    assert method_of({**wsrl, "mixing_ratio": 0.5}) == "calql"  # a warm-up with retained data is not WSRL's
    assert method_of({**wsrl, "reference": "learned"}) == "calql-learned-wsrl"
    assert label("calql-learned-wsrl") == "calql-learned-wsrl"
    assert method_of({"algo": "calql", "reference": "best"}) == "calql-best"
    assert method_of({"algo": "cql", "reference": "best"}) == "cql"
    assert METHODS["calql-wsrl"].overrides() == {"algo": "calql", "mixing_ratio": 0.0, "warmup_steps": 5000}
    assert WSRL_WARMUP_STEPS == 5000
