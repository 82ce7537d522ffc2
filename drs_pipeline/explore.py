"""The reading side: DataFrames for the common questions, from the published copy.

Every helper opens the published copy read-only, queries and closes it, so a
notebook never holds a lock on anything the pipeline writes; ``connect()``
gives a connection to keep open for your own SQL, just as harmless, because
the pipeline replaces the copy by renaming a new file over it.

    from drs_pipeline import explore
    explore.status_counts(domain_name="acme-data")
    explore.job_timeline("bd4193aa-072d-4ce6-beec-adffc7252341")

Filters (``project_id``, ``domain_name``, ``user_name``) are optional and
combine; every value goes to DuckDB as a parameter, never into the SQL text.
The longer questions are named statements in ``explore.sql``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from drs_pipeline.config import published_path
from drs_pipeline.warehouse import store
from drs_pipeline.warehouse.sql import named_statements

QUERIES = dict(
    named_statements(
        resources.files("drs_pipeline").joinpath("explore.sql").read_text(encoding="utf-8")
    )
)

# An instant as a caller may give it: a datetime, a pandas Timestamp, or ISO-8601 text
# (naive values are taken as UTC).
Instant = datetime | str
# A step as a caller may give it: a timedelta (pandas Timedelta included) or text that
# pandas reads as one, such as "5min" or "1 hour".
Step = timedelta | str
# The backlog's grid stays small enough to draw and to join against every interval.
MAX_BACKLOG_POINTS = 10_000
# Without ``every``, the backlog's window is cut into about this many steps.
DEFAULT_BACKLOG_STEPS = 100

__all__ = [
    "backlog",
    "connect",
    "database_path",
    "duration_bounds",
    "duration_samples",
    "durations",
    "job_timeline",
    "jobs_created_per_day",
    "publication",
    "status_counts",
    "stuck_jobs",
    "sync_runs",
    "validation_pass_rate",
]


def database_path() -> Path:
    """The published copy: ``DRS_PUBLISHED_PATH``, else beside ``DRS_DUCKDB_PATH``."""
    return published_path()


def connect(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published copy (times shown in UTC)."""
    target = path or database_path()
    if not target.exists():
        raise FileNotFoundError(
            f"no published history at {target}: run `drs-pipeline demo` or `drs-pipeline sync` "
            "first, or point DRS_PUBLISHED_PATH (or DRS_DUCKDB_PATH) at it"
        )
    return store.connect(target, read_only=True)


def _query(sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    with connect() as con:
        return con.execute(sql, params or []).df()


def _named(name: str, params: dict[str, Any]) -> pd.DataFrame:
    """The rows of the statement ``name`` of ``explore.sql``."""
    with connect() as con:
        return con.execute(QUERIES[name], params).df()


def _instant(value: Instant | None) -> datetime | None:
    """``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _cohort(
    project_id: str | None,
    domain_name: str | None,
    user_name: str | None,
    created_from: Instant | None,
    created_to: Instant | None,
) -> dict[str, Any]:
    """The filters of the statements of ``explore.sql`` that select jobs, as parameters."""
    return {
        "project_id": project_id,
        "domain_name": domain_name,
        "user_name": user_name,
        "created_from": _instant(created_from),
        "created_to": _instant(created_to),
    }


def _per_user(by: str) -> bool:
    """Whether ``by`` groups per tenant and user (else per tenant)."""
    if by not in ("user", "tenant"):
        raise ValueError(f'by must be "user" or "tenant", not {by!r}')
    return by == "user"


def _where(**filters: str | None) -> tuple[str, list[Any]]:
    """``WHERE`` for the filters given (column names are ours, values are parameters)."""
    clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
    params = [value for value in filters.values() if value is not None]
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def publication() -> pd.DataFrame:
    """When the copy was published, and from which sync."""
    return _query("SELECT published_at, sync_id FROM drs.publication")


def status_counts(
    project_id: str | None = None, domain_name: str | None = None, user_name: str | None = None
) -> pd.DataFrame:
    """Jobs present now per tenant, user and status in the configured projects (as
    ``drs.status_counts``): ``as_of`` the oldest last ok sync of the row's projects,
    ``stale`` if one of them is stale."""
    where, params = _where(project_id=project_id, domain_name=domain_name, user_name=user_name)
    return _query(
        f"""
        SELECT domain_name, user_name, status, sum(jobs)::BIGINT AS jobs,
               CASE WHEN bool_and(as_of IS NOT NULL) THEN min(as_of) END AS as_of,
               bool_or(stale) AS stale
        FROM drs.status_counts_by_project {where}
        GROUP BY domain_name, user_name, status ORDER BY ALL
        """,  # noqa: S608 - only our column names are interpolated
        params,
    )


def durations(
    metric: str | None = None,
    project_id: str | None = None,
    domain_name: str | None = None,
    user_name: str | None = None,
) -> pd.DataFrame:
    """Duration statistics per tenant, user and metric, with the jobs still in progress
    and the samples' resolution (``drs.job_durations``); with ``project_id``, that
    project's (``drs.job_durations_by_project``)."""
    table = "job_durations_by_project" if project_id is not None else "job_durations"
    where, params = _where(
        metric=metric, project_id=project_id, domain_name=domain_name, user_name=user_name
    )
    return _query(
        f"SELECT * FROM drs.{table} {where} ORDER BY ALL",  # noqa: S608 - our names only
        params,
    )


def duration_samples(
    metric: str | None = None,
    project_id: str | None = None,
    domain_name: str | None = None,
    user_name: str | None = None,
    created_from: Instant | None = None,
    created_to: Instant | None = None,
) -> pd.DataFrame:
    """Every measured duration (``drs.duration_samples``), for distributions: ``seconds``
    the midpoint of ``low_s`` and ``high_s``, between which the true duration lies.
    ``created_from`` (inclusive) and ``created_to`` (exclusive) select jobs by their
    ``create_time``."""
    params = _cohort(project_id, domain_name, user_name, created_from, created_to)
    return _named("duration_samples", {**params, "metric": metric})


def duration_bounds(
    metric: str | None = None,
    project_id: str | None = None,
    domain_name: str | None = None,
    user_name: str | None = None,
    created_from: Instant | None = None,
    created_to: Instant | None = None,
    by: Literal["user", "tenant"] = "user",
) -> pd.DataFrame:
    """Duration statistics per tenant and user (``by="tenant"``: per tenant, with
    ``user_name`` None) and metric, with the bounds of their percentiles.

    The columns of ``drs.job_durations`` (``jobs`` samples, ``mean_s``, ``p50_s``,
    ``p90_s``, ``max_s`` on the samples' midpoints, ``in_progress``, ``resolution_s``),
    computed alike, and: ``p50_low_s``/``p50_high_s``, ``p90_low_s``/``p90_high_s``,
    between which the true percentiles lie (the same percentiles of each sample's
    ``low_s`` and ``high_s``), and ``longest_in_progress_s``, the longest time taken so
    far by a job still in progress (a lower bound of what it will measure). Owners are
    the jobs' current ones; ``created_from`` (inclusive) and ``created_to`` (exclusive)
    select jobs by their ``create_time``.
    """
    params = _cohort(project_id, domain_name, user_name, created_from, created_to)
    return _named("duration_bounds", {**params, "metric": metric, "per_user": _per_user(by)})


def validation_pass_rate(
    project_id: str | None = None,
    domain_name: str | None = None,
    user_name: str | None = None,
    created_from: Instant | None = None,
    created_to: Instant | None = None,
    by: Literal["user", "tenant"] = "user",
) -> pd.DataFrame:
    """First-time validation pass rate per tenant and user (``by="tenant"``: per tenant).

    Of the jobs seen from their start in ``ASYNC_JOB_VALIDATING`` that have left it
    (those the ``validation`` metric measures): ``left_validating``, of which ``passed``
    (first went to ``AUTO_PARAM_VALIDATE_SUCCESS``, or straight to ``COMMIT_SUCCESS``),
    ``failed`` (to ``ASYNC_JOB_VALIDATE_FAILED``) and ``other`` (any other status);
    ``pass_rate`` = passed / (passed + failed), NaN without either; ``still_validating``,
    present jobs seen from their start and validating still. A job first seen
    validating later than its start may be in its second round, so it does not count.
    Owners are the jobs' current ones.
    """
    params = _cohort(project_id, domain_name, user_name, created_from, created_to)
    return _named("validation_pass_rate", {**params, "per_user": _per_user(by)})


def backlog(
    every: Step | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
    project_id: str | None = None,
    domain_name: str | None = None,
    user_name: str | None = None,
) -> pd.DataFrame:
    """Jobs in each status at each instant (``instant``, ``status``, ``jobs``), from the
    history's intervals, under the owner of the time.

    The instants run back from ``end`` by ``every`` as far as ``start``, so the last
    one is ``end``. By default ``start`` is the first observation of the jobs the
    filters select and ``end`` the copy's last observation; ``every`` cuts the window
    into about 100 steps (whole seconds). A job counts from the first observation of
    its status until the first observation of the next one; a job found gone stops
    counting when it was found gone. A job still in the status it was last seen in
    counts up to the copy's last observation if its project is configured and not
    stale, else only up to its project's last look: what nobody saw is not counted.
    Every status of the selected history has a row at every instant (0 included).
    """
    filters = {"project_id": project_id, "domain_name": domain_name, "user_name": user_name}
    with connect() as con:
        ((first, last),) = con.execute(QUERIES["backlog_span"], filters).fetchall()
        window_start = _instant(start) or first
        window_end = _instant(end) or last
        grid = _grid(window_start, window_end, every)
        return con.execute(QUERIES["backlog"], {**filters, "grid": grid}).df()


def _grid(start: datetime | None, end: datetime | None, every: Step | None) -> list[datetime]:
    """Instants from ``end`` back by ``every`` to ``start``, oldest first."""
    if start is None or end is None or end < start:
        return []
    span = end - start
    if every is None:
        step = timedelta(seconds=max(1, math.ceil(span.total_seconds() / DEFAULT_BACKLOG_STEPS)))
    else:
        step = pd.Timedelta(every).to_pytimedelta()
    if step <= timedelta(0):
        raise ValueError(f"every must be a positive interval, not {every!r}")
    points = span // step + 1
    if points > MAX_BACKLOG_POINTS:
        raise ValueError(
            f"{points} instants from {start} to {end} every {step}: at most "
            f"{MAX_BACKLOG_POINTS}; choose a larger every or a shorter window"
        )
    return [end - k * step for k in reversed(range(points))]


def stuck_jobs(
    project_id: str | None = None, domain_name: str | None = None, user_name: str | None = None
) -> pd.DataFrame:
    """Jobs stuck past their status's threshold, longest first (``drs.stuck_jobs``):
    ``stuck_for_s`` up to the job's last observation, ``as_of`` and ``stale`` its project's."""
    where, params = _where(project_id=project_id, domain_name=domain_name, user_name=user_name)
    return _query(
        f"SELECT * FROM drs.stuck_jobs {where} ORDER BY stuck_for_s DESC",  # noqa: S608
        params,
    )


def job_timeline(async_job_id: str, project_id: str | None = None) -> pd.DataFrame:
    """Every interval of one job, oldest first, with how long each lasted (NaN while
    open) and its last observation (``last_seen_at``: where an open one is known to)."""
    where, params = _where(async_job_id=async_job_id, project_id=project_id)
    return _query(
        f"""
        SELECT project_id, async_job_id, status, domain_name, user_name, valid_from, valid_to,
               epoch(valid_to) - epoch(valid_from) AS seconds, last_seen_at
        FROM drs.async_job_history {where}
        ORDER BY valid_from
        """,  # noqa: S608 - only our column names are interpolated
        params,
    )


def jobs_created_per_day(
    project_id: str | None = None, domain_name: str | None = None, user_name: str | None = None
) -> pd.DataFrame:
    """Jobs created per UTC day by their final (latest known) status."""
    where, params = _where(project_id=project_id, domain_name=domain_name, user_name=user_name)
    return _query(
        f"""
        SELECT date_trunc('day', create_time)::DATE AS day,
               status AS final_status,
               count(*) AS jobs
        FROM drs.async_jobs {where}
        GROUP BY ALL ORDER BY ALL
        """,  # noqa: S608 - only our column names are interpolated
        params,
    )


def sync_runs(project_id: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The latest syncs per project, newest first."""
    where, params = _where(project_id=project_id)
    return _query(
        f"SELECT * FROM drs.sync_runs {where} ORDER BY started_at DESC LIMIT ?",  # noqa: S608
        [*params, int(limit)],
    )
