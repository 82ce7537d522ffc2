"""The marts: project status, status counts, durations and stuck jobs, built from the history.

Each mart is SQL in ``marts/*.sql``, all built in one transaction, so a reader
sees the previous marts or the new ones, never a mix. Most are rebuilt whole:
they are about the present (as_of, every job's last observation). The per-job
ones (queries that join ``marts_scope``: ``drs.job_clock``,
``drs.status_transitions``, ``drs.job_steps``) are rebuilt only for the jobs
whose history changed since the last build, which is exact: a job's rows depend
on its own history and clock alone, and every merge names the jobs it changed
(docs/decisions/0012-marts-rebuild-what-changed.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from drs_pipeline.warehouse.catalog import JOB_CLOCK
from drs_pipeline.warehouse.sql import named_statements, read_sql
from drs_pipeline.warehouse.store import connect, ensure_schema

# In dependency order: project_status first, the marts that read it after.
MART_FILES = (
    "project_status.sql",
    "status_counts.sql",
    "status_transitions.sql",
    "job_durations.sql",
    "stuck_jobs.sql",
)


log = logging.getLogger(__name__)

# How a per-job query keeps to the jobs of the build: written so in its SQL.
SCOPE_JOIN = "SEMI JOIN marts_scope USING (project_id, async_job_id)"


@dataclass(frozen=True)
class Mart:
    table: str
    statement: str

    @property
    def per_job(self) -> bool:
        """A query of the rows of the jobs of ``marts_scope`` (it joins it), each job's
        from its own history and clock alone: built here for every job or for the
        changed ones. Any other statement makes its table itself."""
        return SCOPE_JOIN in self.statement

    def statements(self, *, every_job: bool) -> list[str]:
        """What builds the mart: for a per-job mart, a new table of every job's rows,
        or the rows of the jobs of ``marts_scope`` replaced."""
        if not self.per_job:
            return [self.statement]
        # The table's name and the query come from our own SQL files, never from input.
        table = f"drs.{self.table}"
        if every_job:
            # Every job is in scope: joining the jobs with all of themselves would only
            # cost time (0.15 to 0.3 s a statement at a million jobs).
            query = self.statement.replace(SCOPE_JOIN, "")
            return [f"CREATE OR REPLACE TABLE {table} AS\n{query}"]
        return [
            f"DELETE FROM {table} AS t USING marts_scope AS s "  # noqa: S608
            "WHERE t.project_id = s.project_id AND t.async_job_id = s.async_job_id",
            f"INSERT INTO {table}\n{self.statement}",
        ]


def mart_statements() -> list[Mart]:
    return [
        Mart(name, statement)
        for file in MART_FILES
        for name, statement in named_statements(read_sql(f"marts/{file}"))
    ]


# In order; each statement makes the table of the catalog (warehouse.catalog) it names.
MARTS = mart_statements()
# What the per-job marts' rows were computed with, besides the history: the SQL, and
# freshness (drs.marts_basis). Any other input they read is a job's own.
SQL_DIGEST = hashlib.sha256(
    "\n".join(
        statement
        for mart in MARTS
        for every_job in (True, False)
        for statement in mart.statements(every_job=every_job)
    ).encode()
).hexdigest()[:16]
# Above this share of the jobs changed, building every job's rows costs less than
# replacing the changed ones' (a cold sync changes all of them); both are exact.
REBUILD_ALL_ABOVE = 0.25
EVERY_JOB, CHANGED_JOBS = "every job", "changed jobs"


def build_marts(
    database: Path,
    *,
    stuck_thresholds_s: Mapping[str, float],
    as_of: datetime,
    configured_projects: Mapping[str, str],
    freshness_minutes: float,
    lock_timeout_s: float = 30.0,
) -> dict[str, int]:
    """Rebuild every mart; returns the row count of each.

    ``configured_projects`` maps each project of the settings to its region: the
    marts of what is present now cover these only. A project without an ok sync
    finished within ``freshness_minutes`` of ``as_of`` is stale.
    """
    thresholds = pd.DataFrame(
        {
            "status": pd.Series(list(stuck_thresholds_s), dtype="str"),
            "threshold_s": pd.Series(list(stuck_thresholds_s.values()), dtype="float64"),
        }
    )
    configured = pd.DataFrame(
        {
            "project_id": pd.Series(list(configured_projects), dtype="str"),
            "region": pd.Series(list(configured_projects.values()), dtype="str"),
        }
    )
    params: dict[str, object] = {"as_of": as_of, "freshness_s": freshness_minutes * 60}
    counts: dict[str, int] = {}
    with connect(database, lock_timeout_s=lock_timeout_s) as con:
        ensure_schema(con)
        con.register("stuck_thresholds", thresholds)
        con.register("configured_projects", configured)
        con.execute("BEGIN TRANSACTION")
        try:
            rebuilt, jobs = _scope(con, freshness_s=freshness_minutes * 60)
            for mart in MARTS:
                _run(con, mart.statements(every_job=rebuilt == EVERY_JOB), params)
                clocks_only_changed = mart.table == JOB_CLOCK.name and rebuilt == CHANGED_JOBS
                if clocks_only_changed and _clocks_missing(con):  # trust no row: every job
                    rebuilt, jobs = EVERY_JOB, _count(con, "SELECT count(*) FROM drs.async_jobs")
                    _run(con, mart.statements(every_job=True), params)
                # Table names come from our own SQL files, never from input.
                sql = f"SELECT count(*) FROM drs.{mart.table}"  # noqa: S608
                counts[mart.table] = _count(con, sql)
            con.execute("DELETE FROM drs.jobs_changed_since_marts")
            con.execute("DELETE FROM drs.marts_basis")
            con.execute(
                "INSERT INTO drs.marts_basis VALUES (?, ?, ?, ?, ?)",
                [as_of, SQL_DIGEST, freshness_minutes * 60, rebuilt, jobs],
            )
            con.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.TransactionException):  # a failed COMMIT ended it already
                con.execute("ROLLBACK")
            raise
    return counts


def _scope(con: duckdb.DuckDBPyConnection, *, freshness_s: float) -> tuple[str, int]:
    """Which jobs this build makes the per-job rows of: every job when the last
    build's basis differs (or there was none), or when more than REBUILD_ALL_ABOVE of
    them changed; else those a merge noted since, put in ``marts_scope``. Returns
    which, and how many jobs."""
    basis = con.execute("SELECT sql_digest, freshness_s FROM drs.marts_basis").fetchall()
    per_job = [m.table for m in MARTS if m.per_job]
    built = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'drs' AND list_contains(?, table_name)",
        [per_job],
    ).fetchall()[0][0]
    noted = _count(
        con,
        "SELECT count(*) FROM "
        "(SELECT DISTINCT project_id, async_job_id FROM drs.jobs_changed_since_marts)",
    )
    total = _count(con, "SELECT count(*) FROM drs.async_jobs")
    same_basis = basis == [(SQL_DIGEST, freshness_s)] and built == len(per_job)
    if same_basis and noted <= REBUILD_ALL_ABOVE * total:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE marts_scope AS "
            "SELECT DISTINCT project_id, async_job_id FROM drs.jobs_changed_since_marts"
        )
        return CHANGED_JOBS, _count(con, "SELECT count(*) FROM marts_scope")
    # Every job: the per-job queries leave out their join with marts_scope.
    return EVERY_JOB, total


def _clocks_missing(con: duckdb.DuckDBPyConnection) -> bool:
    """After the changed jobs' clocks, whether some job has none: it was added by a
    writer that notes nothing (an older version of this code, on the same file)."""
    missing = _count(con, "SELECT count(*) FROM drs.async_jobs") - _count(
        con, "SELECT count(*) FROM drs.job_clock"
    )
    if missing:
        log.warning(
            "marts: %d jobs without a clock were not noted as changed: building the "
            "per-job marts for every job",
            missing,
        )
    return missing > 0


def _run(
    con: duckdb.DuckDBPyConnection, statements: list[str], params: Mapping[str, object]
) -> None:
    for statement in statements:
        # DuckDB refuses parameters a statement does not name.
        used = {k: v for k, v in params.items() if f"${k}" in statement}
        con.execute(statement, used).fetchall()


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])
