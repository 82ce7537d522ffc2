"""The SCD2 merge: a batch of projects' syncs into the history, in one transaction.

The steps of merge.sql run in the order declared here, each only when the batch
brings work of its kind; before the transaction commits, merge_checks.sql and
checks.sql check the rows the merge wrote (docs/decisions/0003-merge-design.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from drs_pipeline.warehouse.health import INVARIANT_QUERIES, describe_violations
from drs_pipeline.warehouse.normalize import Normalized
from drs_pipeline.warehouse.sql import named_statements, read_sql

log = logging.getLogger(__name__)

GONE_AT_DTYPE = "datetime64[us, UTC]"


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
    # Server clock minus ours, from the answers' Date headers (drs.clock); None
    # when no page carried one.
    server_clock_offset_s: float | None = None


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


@dataclass(frozen=True)
class Work:
    """merge.sql's ``work`` row: which kinds of change the batch brings."""

    seen_again: bool
    changed: bool
    changed_or_back: bool
    owner_changed: bool
    came_back: bool
    details_changed: bool
    gone: bool
    marts_built: bool

    @property
    def touched(self) -> bool:
        """Some job changed, came back or went: the rows the pre-commit check copies."""
        return self.changed_or_back or self.gone


def always(work: Work) -> bool:
    return True


def touched(work: Work) -> bool:
    return work.touched


@dataclass(frozen=True)
class Step:
    """A named statement of one of our ``.sql`` files, run when ``runs_if`` holds."""

    name: str
    sql: str
    runs_if: Callable[[Work], bool] = always
    params: Mapping[str, object] = field(default_factory=dict)


MERGE_SQL = dict(named_statements(read_sql("merge.sql")))
CHECK_SQL = dict(named_statements(read_sql("merge_checks.sql")))

# Run first, always: the batch classified against the history, then what it brings.
STAGE = MERGE_SQL["stage"]
WORK = MERGE_SQL["work"]


def _merge_step(name: str, runs_if: Callable[[Work], bool] = always) -> Step:
    return Step(name, MERGE_SQL[name], runs_if)


# Then these, in this order. A step whose kind of change the batch does not bring
# would still pass over a history table, so it is skipped
# (docs/decisions/0003-merge-design.md).
MERGE_STEPS: tuple[Step, ...] = (
    _merge_step("close_changed_intervals", lambda work: work.changed),
    _merge_step("open_intervals"),
    _merge_step("insert_new_jobs"),
    _merge_step("update_seen_jobs", lambda work: work.seen_again),
    _merge_step("update_seen_intervals", lambda work: work.seen_again),
    _merge_step("update_changed_status", lambda work: work.changed_or_back),
    _merge_step("update_changed_owner", lambda work: work.owner_changed),
    _merge_step("update_came_back", lambda work: work.came_back),
    _merge_step("update_seen_details", lambda work: work.details_changed),
    _merge_step("stage_gone"),
    _merge_step("close_gone_intervals", lambda work: work.gone),
    _merge_step("mark_gone", lambda work: work.gone),
    _merge_step("note_changes_for_marts", lambda work: work.marts_built),
)

# Last, always: one row of counts per project of the batch.
COUNTS = MERGE_SQL["counts"]

# The pre-commit check: copies of the touched jobs' rows (merge_checks.sql), made
# only when some job was touched, so that no previous merge's copies are checked.
COPY_STEPS: tuple[Step, ...] = tuple(
    Step(name, CHECK_SQL[name], touched)
    for name in ("touched", "touched_jobs", "touched_history", "check_copies")
)
# Then the queries that return the rows breaking a promise: the batch's own, and
# every invariant of checks.sql over the copies (of every project).
CHECK_STEPS: tuple[Step, ...] = (
    Step("new_job_twice", CHECK_SQL["new_job_twice"]),
    *(Step(name, sql, touched, {"project_id": None}) for name, sql in INVARIANT_QUERIES),
)


def apply_syncs(
    con: duckdb.DuckDBPyConnection, syncs: Sequence[ProjectSync], *, record_runs: bool = True
) -> list[SyncRunRow]:
    """Merge several projects' snapshots and record their runs in one transaction.

    One set-based merge for the whole batch: a statement costs about the same
    for one project as for a hundred, so merging projects together is what
    keeps a sync of many projects fast. All or nothing: if anything fails,
    nothing of any project in the batch is written (the caller may then merge
    them one by one to isolate the culprit). Returns the run rows as recorded,
    in the order given, with the merge's counts filled in.

    ``record_runs=False`` writes no ``drs.sync_runs`` rows: the watch
    (``drs_pipeline.watch``) adds observations, it is not a sync.
    """
    if not syncs:
        return []
    project_ids = [sync.run.project_id for sync in syncs]
    if len(set(project_ids)) != len(project_ids):
        raise ValueError("a batch holds each project once")
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
            counts, work = _merge(con)
            con.execute(
                "INSERT INTO drs.rejected_records "
                "SELECT sync_id, project_id, record, reason FROM rejected_batch"
            )
            # Validate before committing: a check after the fact could only
            # report the damage, not undo it.
            broken = _violations(con, work)
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
            if record_runs:
                insert_runs(con, recorded, added_by_merge=True)
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


# The jobs note_jobs_reading_runs leaves out: those the merge in progress added.
ADDED_BY_MERGE = (
    "CREATE OR REPLACE TEMP VIEW added_by_merge AS "
    "SELECT project_id, async_job_id FROM merge_stage WHERE is_new"
)
ADDED_BY_NOTHING = (
    "CREATE OR REPLACE TEMP VIEW added_by_merge AS "
    "SELECT NULL::VARCHAR AS project_id, NULL::VARCHAR AS async_job_id LIMIT 0"
)


def insert_runs(
    con: duckdb.DuckDBPyConnection, runs: Sequence[SyncRunRow], *, added_by_merge: bool = False
) -> None:
    """Rows of ``drs.sync_runs``, in one statement for the whole batch rather than one
    per run, which costs more (docs/decisions/0003-merge-design.md); and the jobs whose
    clock they may change noted for the marts (merge.sql, note_jobs_reading_runs).
    ``added_by_merge``: in apply_syncs' transaction, whose new jobs are noted already."""
    columns = [field.name for field in fields(SyncRunRow)]
    row = "(" + ", ".join("?" * len(columns)) + ")"
    con.execute(
        f"INSERT INTO drs.sync_runs ({', '.join(columns)}) "  # noqa: S608
        f"VALUES {', '.join([row] * len(runs))}",
        [getattr(run, column) for run in runs for column in columns],
    )
    if not _marts_built(con):
        return  # the next build makes every job's rows
    recorded = pd.DataFrame(
        {
            "project_id": pd.Series([run.project_id for run in runs], dtype="str"),
            "started_at": pd.Series([run.started_at for run in runs], dtype=GONE_AT_DTYPE),
            "finished_at": pd.Series([run.finished_at for run in runs], dtype=GONE_AT_DTYPE),
        }
    )
    earliest = min(min(run.started_at, run.finished_at) for run in runs)
    con.register("recorded_runs", recorded)
    try:
        con.execute(ADDED_BY_MERGE if added_by_merge else ADDED_BY_NOTHING)
        con.execute(MERGE_SQL["note_jobs_reading_runs"], {"earliest": earliest}).fetchall()
    finally:
        con.unregister("recorded_runs")


def _marts_built(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) > 0 FROM drs.marts_basis").fetchall()[0][0])


def _merge(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, MergeCounts], Work]:
    """Run merge.sql's steps; returns the counts per project, and the batch's work."""
    con.execute(STAGE)
    result = con.execute(WORK)
    columns = [column[0] for column in result.description or ()]
    (row,) = result.fetchall()
    # A column the work row lacks, or has beyond Work's, is a bug: TypeError.
    work = Work(**{column: bool(flag) for column, flag in zip(columns, row, strict=True)})
    log.debug(
        "merge steps skipped: %s",
        [step.name for step in (*MERGE_STEPS, *COPY_STEPS, *CHECK_STEPS) if not step.runs_if(work)],
    )
    for step in MERGE_STEPS:
        if step.runs_if(work):
            # Fetch every result: DuckDB 2 refuses new work while one is pending.
            con.execute(step.sql).fetchall()
    counts = {
        str(project_id): MergeCounts(int(new), int(changed), int(gone))
        for project_id, new, changed, gone in con.execute(COUNTS).fetchall()
    }
    return counts, work


def _violations(con: duckdb.DuckDBPyConnection, work: Work) -> dict[str, pd.DataFrame]:
    """The history's invariants for the jobs this merge wrote (merge_checks.sql)."""
    for step in COPY_STEPS:
        if step.runs_if(work):
            con.execute(step.sql).fetchall()
    broken: dict[str, pd.DataFrame] = {}
    for step in CHECK_STEPS:
        if step.runs_if(work):
            rows = con.execute(step.sql, dict(step.params)).df()
            if not rows.empty:
                broken[step.name] = rows
    return broken


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
