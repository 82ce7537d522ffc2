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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from drs_pipeline.config import published_path
from drs_pipeline.warehouse import store

__all__ = [
    "connect",
    "database_path",
    "duration_samples",
    "durations",
    "job_timeline",
    "jobs_created_per_day",
    "publication",
    "status_counts",
    "stuck_jobs",
    "sync_runs",
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
) -> pd.DataFrame:
    """Every measured duration, for distributions."""
    where, params = _where(
        metric=metric, project_id=project_id, domain_name=domain_name, user_name=user_name
    )
    return _query(
        f"SELECT * FROM drs.duration_samples {where} ORDER BY metric, seconds",  # noqa: S608
        params,
    )


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
    """Every interval of one job, oldest first, with how long each lasted."""
    where, params = _where(async_job_id=async_job_id, project_id=project_id)
    return _query(
        f"""
        SELECT project_id, async_job_id, status, domain_name, user_name, valid_from, valid_to,
               epoch(valid_to) - epoch(valid_from) AS seconds
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
