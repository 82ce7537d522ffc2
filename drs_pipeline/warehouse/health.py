"""What is wrong with the history, as rows a person can act on.

Plain functions over a DuckDB connection, for the Dagster asset checks after
every run and the tests after every sync sequence; the merge runs the same
invariants (checks.sql) over its own rows before it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from drs_pipeline.warehouse.queries import QUERIES, read_query
from drs_pipeline.warehouse.sql import named_statements, read_sql

INVARIANT_QUERIES = named_statements(read_sql("checks.sql"))
MART_QUERIES = named_statements(read_sql("mart_checks.sql"))
# checks.sql reads checked_jobs and checked_history: here, the history's tables.
CHECK_THE_HISTORY = """
CREATE OR REPLACE TEMP VIEW checked_jobs AS FROM drs.async_jobs;
CREATE OR REPLACE TEMP VIEW checked_history AS FROM drs.async_job_history;
"""


def invariant_violations(
    con: duckdb.DuckDBPyConnection, project_id: str | None = None
) -> dict[str, pd.DataFrame]:
    """Each broken invariant with the rows that break it; empty when all hold."""
    con.execute(CHECK_THE_HISTORY)
    return _rows_breaking(con, INVARIANT_QUERIES, {"project_id": project_id})


def mart_violations(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """Each broken promise of the duration marts with its rows; empty when all hold."""
    return _rows_breaking(con, MART_QUERIES, {})


def _rows_breaking(
    con: duckdb.DuckDBPyConnection,
    queries: Sequence[tuple[str, str]],
    params: dict[str, object],
) -> dict[str, pd.DataFrame]:
    """The rows each named query returns, for the queries that return any."""
    broken: dict[str, pd.DataFrame] = {}
    for name, sql in queries:
        rows = con.execute(sql, params).df()
        if not rows.empty:
            broken[name] = rows
    return broken


def describe_violations(broken: dict[str, pd.DataFrame], sample: int = 5) -> str:
    parts = []
    for name, rows in broken.items():
        shown = rows.head(sample).to_dict("records")
        parts.append(f"{name}: {len(rows)} rows, e.g. {shown}")
    return "; ".join(parts)


def latest_sync_runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The rows of the most recent sync (one writer at a time: that is this run's)."""
    return read_query(con, "latest_sync_runs")


def projects_not_ok(runs: pd.DataFrame, configured: Sequence[str]) -> pd.DataFrame:
    """Configured projects whose latest sync was not ok, or that it did not cover."""
    latest = {row.project_id: (row.outcome, row.error) for row in runs.itertuples()}
    rows: list[tuple[str, str, str | None]] = []
    for project_id in configured:
        outcome, error = latest.get(project_id, ("missing", "not part of the latest sync"))
        if outcome != "ok":
            rows.append((project_id, str(outcome), None if error is None else str(error)))
    return pd.DataFrame(rows, columns=["project_id", "outcome", "error"])


def rejected_in_sync(con: duckdb.DuckDBPyConnection, sync_id: str) -> pd.DataFrame:
    return read_query(con, "rejected_in_sync", {"sync_id": sync_id})


def stale_projects(
    con: duckdb.DuckDBPyConnection,
    configured: Sequence[str],
    *,
    max_age: timedelta,
    now: datetime,
) -> pd.DataFrame:
    """Configured projects with no ok sync finished within ``max_age`` of ``now``."""
    last_ok = dict(con.execute(QUERIES["last_ok_sync_per_project"]).fetchall())
    rows = []
    for project_id in configured:
        finished = last_ok.get(project_id)
        if finished is None or now - finished > max_age:
            rows.append((project_id, finished))
    return pd.DataFrame(rows, columns=["project_id", "last_ok_sync_finished_at"])
