"""The DuckDB history file: opening it (one writer, readers waiting for its lock),
its schema, and the readers the sync needs; merging is warehouse.merge.

DuckDB allows one writing process per file. Opening a file that another
process holds is retried for a while and then fails naming that process,
instead of failing after an unexplained delay.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd

from drs_pipeline.warehouse import catalog, merge
from drs_pipeline.warehouse.catalog import Table
from drs_pipeline.warehouse.merge import ProjectSync, SyncRunRow
from drs_pipeline.warehouse.normalize import Normalized
from drs_pipeline.warehouse.sql import named_statements, read_sql

log = logging.getLogger(__name__)
T = TypeVar("T")


class WarehouseLockedError(RuntimeError):
    """Another process holds the database file."""


def connect(
    path: Path, *, read_only: bool = False, lock_timeout_s: float = 30.0
) -> duckdb.DuckDBPyConnection:
    """Open the database, waiting up to ``lock_timeout_s`` for another process's lock."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    connection = wait_for_lock(
        lambda: duckdb.connect(str(path), read_only=read_only), path, lock_timeout_s
    )
    # Times are stored and shown in UTC whatever the machine's zone.
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def wait_for_lock(open_file: Callable[[], T], path: Path, lock_timeout_s: float) -> T:
    """Call ``open_file`` until no other process holds ``path``'s lock, or time runs out.

    Fails naming the process DuckDB reports as the holder, instead of failing
    after an unexplained delay.
    """
    deadline = time.monotonic() + lock_timeout_s
    reported = False
    while True:
        try:
            return open_file()
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise
            holder = re.search(r"PID (\d+)", message)
            who = f"process {holder.group(1)}" if holder else "another process"
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"{path} is locked by {who} (waited {lock_timeout_s:.0f} s); "
                    "DuckDB allows one writer, or many readers, per file: close that "
                    "connection or wait for that run to end"
                ) from None
            if not reported:
                log.warning("%s is locked by %s; waiting up to %.0f s", path, who, lock_timeout_s)
                reported = True
            time.sleep(0.25)


def scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory connection, to ``attach`` database files to."""
    return duckdb.connect()


def attach(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    alias: str,
    *,
    read_only: bool = False,
    lock_timeout_s: float | None = None,
) -> None:
    """ATTACH ``path`` as ``alias``; with ``lock_timeout_s``, waiting for another
    process's lock as ``connect`` does."""
    # ATTACH takes no parameters; the path is ours, but quote it properly anyway.
    quoted = str(path).replace("'", "''")
    statement = f"ATTACH '{quoted}' AS {alias}" + (" (READ_ONLY)" if read_only else "")
    if lock_timeout_s is None:
        con.execute(statement)
    else:
        wait_for_lock(lambda: con.execute(statement), path, lock_timeout_s)


UPGRADES = dict(named_statements(read_sql("upgrades.sql")))


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what schema.sql declares, and upgrade a history an earlier version wrote."""
    con.execute(read_sql("schema.sql"))
    nullable = con.execute(
        "SELECT is_nullable FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'drs' AND table_name = 'async_job_history' "
        "AND column_name = 'last_seen_at'"
    ).fetchall()
    if not nullable:
        log.info("upgrading the history: drs.async_job_history gains last_seen_at")
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(UPGRADES["history_last_seen_at"])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    if not nullable or nullable[0][0]:
        con.execute(UPGRADES["history_last_seen_at_not_null"])


# DuckDB's rows per row group (set when a file is created; this is its default).
ROW_GROUP_ROWS = 122_880
# Row groups a history table may hold beyond what its rows need before a session
# of writing compacts it (see Warehouse).
MAX_SPARE_ROW_GROUPS = 32
FRAGMENTING_TABLES = (catalog.ASYNC_JOBS.name, catalog.ASYNC_JOB_HISTORY.name)


class Warehouse:
    """The history database opened for writing. Use as a context manager.

    Its checkpoints do not vacuum, unless the history is fragmented: nothing here
    deletes rows, so a vacuum would only repack the partly filled row group each
    large insert leaves (docs/decisions/0003-merge-design.md). Once a table holds
    more than ``max_spare_row_groups`` beyond what its rows need, a session opens
    with the vacuum on, and its checkpoints compact them.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock_timeout_s: float = 30.0,
        max_spare_row_groups: int = MAX_SPARE_ROW_GROUPS,
    ) -> None:
        self.path = path
        self._connection = connect(path, lock_timeout_s=lock_timeout_s)
        ensure_schema(self._connection)
        spare = self.spare_row_groups()
        self.compacting = spare > max_spare_row_groups
        if self.compacting:
            log.info("%s: %d spare row groups; compacting them as this session writes", path, spare)
        else:
            self._connection.execute("SET max_vacuum_tasks = 0")

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._connection

    def spare_row_groups(self) -> int:
        """Row groups beyond what their rows need, in the history table with the most."""
        spare = 0
        for table in FRAGMENTING_TABLES:
            # Table names come from the constant above, never from input.
            ((groups, rows),) = self._connection.execute(
                "SELECT count(DISTINCT row_group_id), "  # noqa: S608
                f"(SELECT count(*) FROM drs.{table}) "
                f"FROM pragma_storage_info('drs.{table}')"
            ).fetchall()
            spare = max(spare, int(groups) - math.ceil(int(rows) / ROW_GROUP_ROWS))
        return spare

    def job_rows(self) -> int:
        """Rows of ``drs.async_jobs``: what each merge's pass over the history reads."""
        ((count,),) = self._connection.execute("SELECT count(*) FROM drs.async_jobs").fetchall()
        return int(count)

    def present_job_counts(self) -> dict[str, int]:
        """Jobs not gone per project, as last committed: only these projects can miss one."""
        rows = self._connection.execute(
            "SELECT project_id, count(*) FROM drs.async_jobs WHERE NOT is_gone GROUP BY ALL"
        ).fetchall()
        return {str(project_id): int(count) for project_id, count in rows}

    def missing_job_ids(self, project_id: str, seen_ids: pd.Series) -> set[str]:
        """Ids of the project's jobs that are not gone, as last committed, and not in
        ``seen_ids`` (a complete listing's ids): the jobs that may have left.

        Computed by DuckDB, so that only the missing ids (almost always none) become
        Python strings, not every id the project holds, beside the event loop
        (docs/decisions/0001-moving-list-protocol.md). On a cursor of its own, so
        it may run in another thread while a merge runs (which never touches this
        project's rows before it is queued to merge).
        """
        with self._connection.cursor() as cursor:
            cursor.register("listed", pd.DataFrame({"async_job_id": seen_ids}, copy=False))
            ids = cursor.execute(
                "SELECT j.async_job_id FROM drs.async_jobs AS j "
                "ANTI JOIN listed USING (async_job_id) "
                "WHERE j.project_id = ? AND NOT j.is_gone",
                [project_id],
            ).fetchnumpy()["async_job_id"]
        return set(ids.tolist())

    def apply_project_sync(
        self,
        project_id: str,
        normalized: Normalized,
        confirmed_gone: Iterable[str],
        gone_at: datetime,
        run: SyncRunRow,
    ) -> SyncRunRow:
        """Merge one project's snapshot and record its run, all in one transaction.

        Returns the run row as recorded, with the merge's counts filled in.
        """
        assert run.project_id == project_id
        (recorded,) = self.apply_project_syncs(
            [ProjectSync(run, normalized, frozenset(confirmed_gone), gone_at)]
        )
        return recorded

    def apply_project_syncs(self, syncs: Sequence[ProjectSync]) -> list[SyncRunRow]:
        """Merge several projects' snapshots and record their runs in one transaction
        (``warehouse.merge.apply_syncs``): the run rows as recorded, in the order given."""
        return merge.apply_syncs(self._connection, syncs)

    def record_run(self, run: SyncRunRow) -> None:
        """Record a run that wrote nothing else (a failed project), with the jobs whose
        clock it may change noted for the marts, in one transaction."""
        con = self._connection
        con.execute("BEGIN TRANSACTION")
        try:
            merge.insert_runs(con, [run])
            con.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.TransactionException):  # a failed COMMIT ended it already
                con.execute("ROLLBACK")
            raise


@contextmanager
def open_warehouse(path: Path, *, lock_timeout_s: float = 30.0) -> Iterator[Warehouse]:
    warehouse = Warehouse(path, lock_timeout_s=lock_timeout_s)
    try:
        yield warehouse
    finally:
        warehouse.close()


def table_row_counts(
    con: duckdb.DuckDBPyConnection, tables: Iterable[Table] = catalog.HISTORY
) -> dict[str, int]:
    """Rows in each table of the catalog given (the history's, by default)."""
    counts: dict[str, int] = {}
    for table in tables:
        # Table names come from the catalog, never from input.
        sql = f"SELECT count(*) FROM {table.qualified_name}"  # noqa: S608
        ((count,),) = con.execute(sql).fetchall()
        counts[table.name] = int(count)
    return counts


def table_row_counts_by_project(
    con: duckdb.DuckDBPyConnection, tables: Iterable[Table] = catalog.HISTORY
) -> dict[str, dict[str, int]]:
    """Rows of each project in each table given: table name to project id to rows."""
    counts: dict[str, dict[str, int]] = {}
    for table in tables:
        # Table names come from the catalog, never from input.
        sql = f"SELECT project_id, count(*) FROM {table.qualified_name} GROUP BY ALL"  # noqa: S608
        counts[table.name] = {str(project): int(n) for project, n in con.execute(sql).fetchall()}
    return counts
