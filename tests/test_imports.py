"""The package's seams, read from its import statements: no cycles, Dagster only in
``defs/``, ``definitions.py`` and ``cli.py``, the benchmark only behind ``drs-pipeline bench``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "drs_pipeline"
DAGSTER_ROOMS = (
    "drs_pipeline.defs",
    "drs_pipeline.definitions",
    "drs_pipeline.cli",
    # Benchmark scenario 5 runs the job through Dagster, in its measurement process.
    "drs_pipeline.benchmarks.scheduled",
)
BENCHMARK = ("drs_pipeline.bench", "drs_pipeline.benchmarks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports, anywhere in it (at load time, inside functions,
    under TYPE_CHECKING): ours by module name, third-party ones by top-level package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [base] * bool(base))
            # `from package import module` imports the module.
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            found |= submodules or {base}
    ours = {module for module in found if module in MODULES}
    return (ours | {module.split(".")[0] for module in found - ours}) - {name}


GRAPH = {name: imports(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node] & graph.keys():
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while (other := stack.pop()) != node:
                component.append(other)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_package() -> None:
    assert "drs_pipeline.warehouse.records" in GRAPH["drs_pipeline.warehouse.normalize"]
    assert "drs_pipeline.drs.targets" in GRAPH["drs_pipeline.sync"]
    # Imported inside a function: still an edge.
    assert "drs_pipeline.simulator" in GRAPH["drs_pipeline.drs.targets"]
    assert {"httpx", "pandas", "dagster"} <= set().union(*GRAPH.values())


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_no_module_imports_itself_back() -> None:
    assert cycles(GRAPH) == []


def test_only_the_dagster_rooms_import_dagster() -> None:
    importers = {
        name for name, imported in GRAPH.items() if imported & {"dagster", "dagster_duckdb"}
    }
    assert importers, "no module imports dagster: the graph is wrong"
    assert {name for name in importers if not name.startswith(DAGSTER_ROOMS)} == set()


def test_only_the_bench_command_imports_the_benchmark() -> None:
    importers = {
        name
        for name, imported in GRAPH.items()
        if not name.startswith(BENCHMARK) and any(m.startswith(BENCHMARK) for m in imported)
    }
    assert importers == {"drs_pipeline.cli"}


@pytest.mark.parametrize("argv", [["--help"], ["sync", "--help"], ["--version"]])
def test_the_command_line_loads_no_benchmark_and_no_dagster_for_help(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "drs_pipeline.cli", *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    # -X importtime writes one line per module imported, its name last.
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "drs_pipeline.config" in loaded
    assert {m for m in loaded if m.startswith((*BENCHMARK, "dagster", "pandas"))} == set()
