"""The package layering: imports of calql's own modules, read with `ast` (top-level, inside
functions, under TYPE_CHECKING, relative), form an acyclic graph between calql's packages whose
edges point down `LAYERS`: `calql.data` below `calql.envs`, the commands and sweeps below the CLI.
A failure lists each offending import as `package -> package  (module:line imports target)`."""

import ast
import dataclasses
from pathlib import Path

import calql

ROOT = Path(calql.__file__).parent

LAYERS = (
    ("calql.errors", "calql.version", "calql.methods", "calql.rundir"),
    ("calql.config",),
    ("calql.data",),
    ("calql.envs", "calql.agent"),
    ("calql.training", "calql.reporting"),
    ("calql.evaluation",),
    ("calql.api", "calql.options", "calql.console"),
    ("calql.commands", "calql.sweep", "calql.cli", "calql"),
)
"""calql's packages bottom to top (README.md, Layout): a package imports only its own layer or lower."""


@dataclasses.dataclass(frozen=True)
class Edge:
    """One import of a calql module by another, at `line` of `module`."""

    module: str
    target: str
    line: int

    @property
    def packages(self) -> tuple[str, str]:
        return package_of(self.module), package_of(self.target)

    def __str__(self) -> str:
        return f"{' -> '.join(self.packages)}  ({self.module}:{self.line} imports {self.target})"


def package_of(module: str) -> str:
    """calql.envs.tasks -> calql.envs; calql.config -> calql.config (a top-level module is its own node)."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from ... import` names (relative imports resolved against `module`)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_in(source: str, module: str, is_package: bool = False) -> list[Edge]:
    """Every import of a calql module anywhere in `source`, the text of `module` (`from calql import x`
    counts as calql.x)."""
    edges = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            targets = [f"{base}.{alias.name}" if base == "calql" else base for alias in node.names]
        else:
            continue
        edges += [Edge(module, target, node.lineno) for target in dict.fromkeys(targets) if target.startswith("calql.")]
    return sorted(edges, key=lambda edge: edge.line)


def imports_of(path: Path) -> list[Edge]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def package_edges() -> list[Edge]:
    """Imports that cross from one calql package to another. Imports of the root `calql` itself
    (`calql.__version__`) are not edges: the root holds the version and nothing else here."""
    edges = [edge for path in sorted(ROOT.rglob("*.py")) for edge in imports_of(path)]
    return [edge for edge in edges if edge.packages[0] != edge.packages[1]]


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycle_edges(edges: list[Edge]) -> list[Edge]:
    """The edges that lie on a cycle of the package graph: a -> b where a is reachable from b."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.packages[0], set()).add(edge.packages[1])
    return [edge for edge in edges if edge.packages[0] in reachable(graph, edge.packages[1])]


def _listing(edges: list[Edge]) -> str:
    return "\n".join(["", *map(str, edges)])


def test_the_walk_sees_function_local_relative_and_from_package_imports():
    source = (
        "from calql import config\nfrom . import replay\nfrom ..envs import tasks\n"
        "def f():\n    import calql.agent.state\n"
    )
    targets = [edge.target for edge in imports_in(source, "calql.data.sources")]
    assert targets == ["calql.config", "calql.data", "calql.envs", "calql.agent.state"]
    assert [edge.target for edge in imports_in("from .tasks import Task\n", "calql.envs", True)] == ["calql.envs.tasks"]


def test_no_cycle_between_calql_packages():
    cycles = cycle_edges(package_edges())
    assert not cycles, "imports that close a cycle between packages:" + _listing(cycles)


def test_data_imports_nothing_of_envs():
    upward = [edge for edge in package_edges() if edge.packages == ("calql.data", "calql.envs")]
    assert not upward, "calql.data must not import calql.envs:" + _listing(upward)


def test_imports_point_down_the_layers():
    layer = {package: height for height, packages in enumerate(LAYERS) for package in packages}
    edges = package_edges()
    unplaced = sorted({package for edge in edges for package in edge.packages} - set(layer))
    assert not unplaced, f"packages missing from LAYERS (add them there and to README.md's Layout): {unplaced}"
    upward = [edge for edge in edges if layer[edge.packages[0]] < layer[edge.packages[1]]]
    assert not upward, "imports from a lower layer up to a higher one:" + _listing(upward)


def test_sweep_and_commands_do_not_import_the_cli():
    upward = [
        edge
        for edge in package_edges()
        if edge.packages[0] in ("calql.sweep", "calql.commands") and edge.packages[1] == "calql.cli"
    ]
    assert not upward, "calql.sweep and calql.commands must not import calql.cli:" + _listing(upward)
