"""The DuckDB history file: opening it, its schema, and writing one project's sync.

DuckDB allows one writing process per file. Opening a file that another
process holds is retried for a while and then fails naming that process,
instead of failing after an unexplained delay.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from drs_pipeline.warehouse.health import describe_violations, invariant_violations
from drs_pipeline.warehouse.normalize import Normalized
from drs_pipeline.warehouse.sql import named_statements, read_sql


log = logging.getLogger(__name__)
T = TypeVar("T")


class WarehouseLockedError(RuntimeError):
    """Another process holds the database file."""


class HistoryInvariantError(RuntimeError):
    """A merge would have broken the history; it was rolled back."""


@dataclass(frozen=True)
class SyncRunRow:
    """A row of ``drs.sync_runs``."""

    sync_id: str
    project_id: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    error: str | None
    pages: int
    jobs_seen: int
    total_count: int | None
    new_jobs: int = 0
    changed_jobs: int = 0
    gone_jobs: int = 0
    rejected_records: int = 0


@dataclass(frozen=True)
class ProjectSync:
    """What one project's sync brings to the history: its run row, its snapshot, and
    the jobs the API confirmed absent (marked gone at ``gone_at``)."""

    run: SyncRunRow
    normalized: Normalized
    confirmed_gone: frozenset[str]
    gone_at: datetime


@dataclass(frozen=True)
class MergeCounts:
    new_jobs: int
    changed_jobs: int
    gone_jobs: int


MERGE_STATEMENTS = named_statements(read_sql("merge.sql"))


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


class Warehouse:
    """The history database opened for writing. Use as a context manager."""

    def __init__(self, path: Path, *, lock_timeout_s: float = 30.0) -> None:
        self.path = path
        self._connection = connect(path, lock_timeout_s=lock_timeout_s)
        self._connection.execute(read_sql("schema.sql"))

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._connection

    def present_job_ids(self, project_id: str) -> set[str]:
        rows = self._connection.execute(
            "SELECT async_job_id FROM drs.async_jobs WHERE project_id = ? AND NOT is_gone",
            [project_id],
        ).fetchall()
        return {row[0] for row in rows}

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
        con = self._connection
        confirmed = pd.DataFrame({"async_job_id": pd.Series(sorted(confirmed_gone), dtype=str)})
        con.register("snapshot", normalized.jobs)
        con.register("confirmed_gone", confirmed)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                counts = self._merge(project_id, gone_at)
                rejected = normalized.rejected.assign(sync_id=run.sync_id, project_id=project_id)
                con.register("rejected_batch", rejected)
                con.execute(
                    "INSERT INTO drs.rejected_records "
                    "SELECT sync_id, project_id, record, reason FROM rejected_batch"
                )
                # Validate before committing: a check after the fact could only
                # report the damage, not undo it.
                broken = invariant_violations(con, project_id)
                if broken:
                    raise HistoryInvariantError(
                        f"merge of project {project_id} rolled back, it would break the "
                        f"history: {describe_violations(broken)}"
                    )
                recorded = replace(
                    run,
                    new_jobs=counts.new_jobs,
                    changed_jobs=counts.changed_jobs,
                    gone_jobs=counts.gone_jobs,
                    rejected_records=len(rejected),
                )
                self._insert_run(recorded)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            for view in ("snapshot", "confirmed_gone", "rejected_batch"):
                con.unregister(view)
        return recorded

    def apply_project_syncs(self, syncs: Sequence[ProjectSync]) -> list[SyncRunRow]:
        """``apply_project_sync`` of each (baseline; to be batched)."""
        return [
            self.apply_project_sync(
                s.run.project_id, s.normalized, s.confirmed_gone, s.gone_at, s.run
            )
            for s in syncs
        ]

    def record_run(self, run: SyncRunRow) -> None:
        """Record a run that wrote nothing else (a failed project)."""
        self._insert_run(run)

    def _merge(self, project_id: str, gone_at: datetime) -> MergeCounts:
        params: dict[str, Any] = {"project_id": project_id, "gone_at": gone_at}
        rows: list[tuple[Any, ...]] = []
        for _name, statement in MERGE_STATEMENTS:
            used = {k: v for k, v in params.items() if f"${k}" in statement}
            # Fetch every result: DuckDB 2 refuses new work while one is pending.
            rows = self._connection.execute(statement, used).fetchall()
        (counts,) = rows  # merge.sql ends with the one-row counts query
        return MergeCounts(*(int(value) for value in counts))

    def _insert_run(self, run: SyncRunRow) -> None:
        self._connection.execute(
            "INSERT INTO drs.sync_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.sync_id,
                run.project_id,
                run.started_at,
                run.finished_at,
                run.outcome,
                run.error,
                run.pages,
                run.jobs_seen,
                run.total_count,
                run.new_jobs,
                run.changed_jobs,
                run.gone_jobs,
                run.rejected_records,
            ],
        )


@contextmanager
def open_warehouse(path: Path, *, lock_timeout_s: float = 30.0) -> Iterator[Warehouse]:
    warehouse = Warehouse(path, lock_timeout_s=lock_timeout_s)
    try:
        yield warehouse
    finally:
        warehouse.close()


HISTORY_TABLES = ("async_jobs", "async_job_history", "sync_runs", "rejected_records")


def table_row_counts(path: Path) -> dict[str, int]:
    """Rows in each history table."""
    counts: dict[str, int] = {}
    with connect(path, read_only=True) as con:
        for table in HISTORY_TABLES:
            # Table names come from the constant above, never from input.
            (count,) = con.execute(f"SELECT count(*) FROM drs.{table}").fetchall()[0]  # noqa: S608
            counts[table] = int(count)
    return counts
