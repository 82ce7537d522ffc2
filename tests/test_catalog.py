"""The catalog of tables against the SQL that creates them, and the docs that show it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.warehouse import catalog, marts
from drs_pipeline.warehouse.store import Warehouse, connect

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "drs_pipeline"
DATA_MODEL = REPO / "docs" / "data-model.md"

Columns = dict[str, list[tuple[str, str, bool]]]


def columns_in(database: Path) -> Columns:
    """Each table of the ``drs`` schema with its (column, type, nullable) in order."""
    with connect(database, read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE schema_name = 'drs' ORDER BY table_name, column_index"
        ).fetchall()
    found: Columns = {}
    for table, column, type_, nullable in rows:
        found.setdefault(table, []).append((column, type_, nullable))
    return found


def catalogued(tables: tuple[catalog.Table, ...]) -> Columns:
    return {t.name: [(c.name, c.type, c.nullable) for c in t.columns] for t in tables}


@pytest.fixture(scope="module")
def job_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real run of the job on the embedded simulator: every table a run writes."""
    database = tmp_path_factory.mktemp("catalog") / "history.duckdb"
    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(embedded_simulator=True),
            "history_db": HistoryDatabaseResource(path=str(database)),
        }
    )
    with dg.instance_for_test() as instance:
        result = execute_pipeline(definitions, instance=instance, raise_on_error=False)
    assert result.success
    yield database


def test_schema_sql_creates_the_history_and_alerts_tables_of_the_catalog(tmp_path: Path) -> None:
    database = tmp_path / "fresh.duckdb"
    with Warehouse(database):
        pass
    assert columns_in(database) == catalogued(
        (
            *catalog.HISTORY,
            *catalog.ALERTS_GROUP,
            catalog.JOBS_CHANGED_SINCE_MARTS,
            catalog.MARTS_BASIS,
        )
    )


def test_a_run_writes_exactly_the_tables_of_the_catalog(job_run: Path) -> None:
    assert columns_in(job_run) == catalogued(
        (
            *catalog.HISTORY,
            *catalog.MARTS,
            *catalog.ALERTS_GROUP,
            catalog.DATABASE_INFO,
            catalog.JOBS_CHANGED_SINCE_MARTS,
            catalog.MARTS_BASIS,
        )
    )


def test_the_published_copy_holds_every_table_of_the_catalog(job_run: Path) -> None:
    copy = job_run.with_name("history_published.duckdb")
    assert columns_in(copy) == catalogued(catalog.TABLES)


def test_each_mart_statement_builds_a_mart_of_the_catalog() -> None:
    built = [mart.table for mart in marts.MARTS]
    assert sorted(built) == sorted(t.name for t in catalog.MARTS)
    # The per-job marts are queries, made tables by warehouse/marts.py.
    per_job = [mart for mart in marts.MARTS if mart.per_job]
    assert [mart.table for mart in per_job] == ["job_clock", "status_transitions", "job_steps"]
    # Each keeps to the jobs of the build by the one join that a build of every job drops.
    assert [mart.statement.count(marts.SCOPE_JOIN) for mart in per_job] == [1, 2, 2]
    assert "JOIN marts_scope" not in "".join(
        "".join(mart.statements(every_job=True)) for mart in per_job
    )


def test_tables_are_found_by_name() -> None:
    assert catalog.table("sync_runs") is catalog.SYNC_RUNS
    assert catalog.SYNC_RUNS.qualified_name == "drs.sync_runs"
    with pytest.raises(KeyError):
        catalog.table("drs.sync_runs")


def test_markdown_lists_every_table_with_its_columns() -> None:
    text = catalog.catalog_markdown()
    assert text.startswith("### History\n\n#### `drs.async_jobs`\n\n")
    assert [line for line in text.splitlines() if line.startswith("#### ")] == [
        f"#### `drs.{t.name}`" for t in catalog.TABLES
    ]
    section = text.split("#### `drs.rejected_records`\n\n", 1)[1].split("\n\n###", 1)[0]
    assert section == (
        "Records the API returned that could not be read, with the reason.\n"
        "\n"
        "| column | type | meaning |\n"
        "|---|---|---|\n"
        "| `sync_id` | `VARCHAR` NOT NULL | The sync that recorded the row. |\n"
        "| `project_id` | `VARCHAR` NOT NULL | "
        "The Huawei Cloud project (32 hexadecimal digits). |\n"
        "| `record` | `VARCHAR` NOT NULL | The raw JSON as received. |\n"
        "| `reason` | `VARCHAR` NOT NULL | The page offset, the field and what was wrong. |"
    )
    assert "| `requests` | `INTEGER` | Every request sent for the project" in text


def test_the_docs_table_reference_is_the_catalog() -> None:
    if not DATA_MODEL.exists():
        pytest.skip("docs/data-model.md is not written yet")
    assert catalog.catalog_markdown() in DATA_MODEL.read_text(encoding="utf-8"), (
        "paste the output of drs_pipeline.warehouse.catalog.catalog_markdown() into "
        "docs/data-model.md"
    )


def duckdb_connect_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call ``duckdb.connect``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "connect"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "duckdb"
    ]


def test_only_the_warehouse_package_opens_duckdb() -> None:
    outside = {
        str(path.relative_to(REPO)): lines
        for path in PACKAGE.rglob("*.py")
        if PACKAGE / "warehouse" not in path.parents and (lines := duckdb_connect_calls(path))
    }
    assert outside == {}
    assert duckdb_connect_calls(PACKAGE / "warehouse" / "store.py") != []
