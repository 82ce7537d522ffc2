"""The DuckDB history file: opening it, its schema, and writing one project's sync.

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
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from drs_pipeline.warehouse import catalog
from drs_pipeline.warehouse.catalog import Table
from drs_pipeline.warehouse.health import INVARIANT_QUERIES, describe_violations
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
    # Every request sent for the project: pages, look-ups by id, retries.
    requests: int = 0
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
GONE_AT_DTYPE = "datetime64[us, UTC]"


def _scoped_invariant_queries() -> list[tuple[str, str]]:
    """checks.sql over the copies of the rows this merge wrote, instead of the tables."""
    scoped = []
    for name, sql in INVARIANT_QUERIES:
        # A check that no longer names these tables would silently check nothing.
        assert "drs.async_jobs" in sql or "drs.async_job_history" in sql, name
        scoped.append(
            (
                name,
                sql.replace("drs.async_job_history", "merge_touched_history").replace(
                    "drs.async_jobs", "merge_touched_jobs"
                ),
            )
        )
    return scoped


# The setup statements of merge_checks.sql, then its queries, then checks.sql's.
_MERGE_CHECKS = named_statements(read_sql("merge_checks.sql"))
MERGE_CHECK_STATEMENTS = _MERGE_CHECKS + _scoped_invariant_queries()
MERGE_CHECK_QUERIES = {
    name
    for name, sql in MERGE_CHECK_STATEMENTS
    # Queries return the rows breaking a promise; the rest set them up.
    if re.sub(r"^\s*--.*$", "", sql, flags=re.MULTILINE)
    .lstrip()
    .upper()
    .startswith(("SELECT", "WITH"))
}
# Every invariant of checks.sql must be checked, not mistaken for a setup statement.
assert {name for name, _ in INVARIANT_QUERIES} <= MERGE_CHECK_QUERIES


def _only_if(statements: list[tuple[str, str]]) -> dict[str, str]:
    """Each step's ``-- only if: <flag>``: a column of merge.sql's ``work`` row."""
    flags = {}
    for name, sql in statements:
        marker = re.search(r"^-- only if: (\w+)\s*$", sql, flags=re.MULTILINE)
        if marker:
            flags[name] = marker.group(1)
    return flags


# The steps to skip when their flag is false. checks.sql runs over the copies of
# the touched jobs, so it is skipped with them.
ONLY_IF = {
    **_only_if(MERGE_STATEMENTS),
    **_only_if(_MERGE_CHECKS),
    **{name: "touched" for name, _ in INVARIANT_QUERIES},
}


def _rejected(syncs: Sequence[ProjectSync]) -> pd.DataFrame:
    """The batch's rejected records with their sync and project (usually none at all)."""
    frames = [
        sync.normalized.rejected.assign(sync_id=sync.run.sync_id, project_id=sync.run.project_id)
        for sync in syncs
        if not sync.normalized.rejected.empty
    ]
    if frames:
        return _concat(frames)
    columns = [*syncs[0].normalized.rejected.columns, "sync_id", "project_id"]
    return pd.DataFrame(columns=columns, dtype="str")


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The projects' snapshots as one frame, categorical columns kept categorical.

    pd.concat turns categoricals with different categories (every project has its
    own) into Python strings, which DuckDB would then convert one by one.
    """
    # An empty frame's categories have no type of their own (object), which
    # union_categoricals refuses beside the others' strings; it adds no rows anyway.
    frames = [frame for frame in frames if len(frame)] or frames[:1]
    # One frame (the usual batch of one in tests) is used as it is, not copied.
    if len(frames) == 1:
        return frames[0]
    columns: dict[str, pd.Series | pd.Categorical] = {}
    for name in frames[0].columns:
        parts = [frame[name] for frame in frames]
        if all(isinstance(part.dtype, pd.CategoricalDtype) for part in parts):
            columns[name] = union_categoricals(parts, sort_categories=True)
        else:
            columns[name] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns, columns=frames[0].columns)


def _numbered(snapshot: pd.DataFrame) -> pd.DataFrame:
    """The snapshot with each row's position, which merge.sql inserts in order."""
    return snapshot.assign(snapshot_row=np.arange(len(snapshot), dtype=np.int64))


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
        self._connection.execute(read_sql("schema.sql"))
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
        """Merge several projects' snapshots and record their runs in one transaction.

        One set-based merge for the whole batch: a statement costs about the same
        for one project as for a hundred, so merging projects together is what
        keeps a sync of many projects fast. All or nothing: if anything fails,
        nothing of any project in the batch is written (the caller may then merge
        them one by one to isolate the culprit). Returns the run rows as recorded,
        in the order given, with the merge's counts filled in.
        """
        if not syncs:
            return []
        project_ids = [sync.run.project_id for sync in syncs]
        if len(set(project_ids)) != len(project_ids):
            raise ValueError("a batch holds each project once")
        con = self._connection
        views = {
            "snapshot": _numbered(_concat([sync.normalized.jobs for sync in syncs])),
            "confirmed_gone": pd.DataFrame(
                [
                    (sync.run.project_id, job_id, sync.gone_at)
                    for sync in syncs
                    for job_id in sorted(sync.confirmed_gone)
                ],
                columns=["project_id", "async_job_id", "gone_at"],
            ).astype({"project_id": "str", "async_job_id": "str", "gone_at": GONE_AT_DTYPE}),
            "merge_projects": pd.DataFrame({"project_id": pd.Series(project_ids, dtype="str")}),
            "rejected_batch": _rejected(syncs),
        }
        for name, frame in views.items():
            con.register(name, frame)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                counts, work = self._merge()
                con.execute(
                    "INSERT INTO drs.rejected_records "
                    "SELECT sync_id, project_id, record, reason FROM rejected_batch"
                )
                # Validate before committing: a check after the fact could only
                # report the damage, not undo it.
                broken = self._violations(work)
                if broken:
                    raise HistoryInvariantError(
                        f"merge of project(s) {', '.join(project_ids)} rolled back, it would "
                        f"break the history: {describe_violations(broken)}"
                    )
                recorded = [
                    replace(
                        sync.run,
                        new_jobs=counts[sync.run.project_id].new_jobs,
                        changed_jobs=counts[sync.run.project_id].changed_jobs,
                        gone_jobs=counts[sync.run.project_id].gone_jobs,
                        rejected_records=len(sync.normalized.rejected),
                    )
                    for sync in syncs
                ]
                self._insert_runs(recorded)
                con.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (disk full, file too large) has already ended
                # the transaction: its error is the one to report, not the ROLLBACK's
                # "no transaction is active".
                with suppress(duckdb.TransactionException):
                    con.execute("ROLLBACK")
                raise
        finally:
            for name in views:
                con.unregister(name)
        return recorded

    def record_run(self, run: SyncRunRow) -> None:
        """Record a run that wrote nothing else (a failed project)."""
        self._insert_runs([run])

    def _merge(self) -> tuple[dict[str, MergeCounts], dict[str, bool]]:
        """Run merge.sql; returns the counts per project, and its ``work`` flags."""
        rows: list[tuple[Any, ...]] = []
        work: dict[str, bool] = {}
        for name, statement in MERGE_STATEMENTS:
            if not _needed(name, work):
                continue
            result = self._connection.execute(statement)
            # Fetch every result: DuckDB 2 refuses new work while one is pending.
            rows = result.fetchall()
            if name == "work":
                columns = [column[0] for column in result.description or ()]
                work = {column: bool(flag) for column, flag in zip(columns, rows[0], strict=True)}
        # merge.sql ends with the counts query, one row per project of the batch.
        counts = {
            str(project_id): MergeCounts(int(new), int(changed), int(gone))
            for project_id, new, changed, gone in rows
        }
        log.debug("merge steps skipped: %s", [name for name in ONLY_IF if not _needed(name, work)])
        return counts, work

    def _violations(self, work: dict[str, bool]) -> dict[str, pd.DataFrame]:
        """The history's invariants for the jobs this merge wrote (merge_checks.sql)."""
        con = self._connection
        broken: dict[str, pd.DataFrame] = {}
        for name, statement in MERGE_CHECK_STATEMENTS:
            if not _needed(name, work):
                continue
            # checks.sql's queries take a project (None: all), here all of the copies.
            params = {"project_id": None} if "$project_id" in statement else {}
            rows = con.execute(statement, params).df()
            if name in MERGE_CHECK_QUERIES and not rows.empty:
                broken[name] = rows
        return broken

    def _insert_runs(self, runs: Sequence[SyncRunRow]) -> None:
        # One statement for the whole batch: a statement per run cost 1.2 ms each,
        # 0.12 s for a batch of 100 projects.
        columns = [field.name for field in fields(SyncRunRow)]
        row = "(" + ", ".join("?" * len(columns)) + ")"
        self._connection.execute(
            f"INSERT INTO drs.sync_runs ({', '.join(columns)}) "  # noqa: S608
            f"VALUES {', '.join([row] * len(runs))}",
            [getattr(run, column) for run in runs for column in columns],
        )


def _needed(step: str, work: dict[str, bool]) -> bool:
    """Whether a merge step has anything to do, given the ``work`` flags of the batch."""
    flag = ONLY_IF.get(step)
    # A flag the work row lacks is a bug in merge.sql: KeyError, not a silent skip.
    return flag is None or work[flag]


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
