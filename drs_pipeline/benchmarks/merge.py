"""Scenario 4: the SCD2 merge alone, against a plain insert of the same DataFrame.

Synthetic snapshots (no HTTP): ``projects x jobs_per_project`` jobs are merged
once into an empty history (not measured), then a second snapshot of the same
jobs, observed a minute later with ``changed_fraction`` of them in another
status, is merged the way a sync merges it (measured). The bound is
``INSERT INTO ... SELECT`` of that second DataFrame into an empty table of the
same database: what landing the rows costs before any history is kept.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from drs_pipeline.benchmarks.measure import Result
from drs_pipeline.drs import statuses
from drs_pipeline.warehouse.merge import ProjectSync, SyncRunRow
from drs_pipeline.warehouse.normalize import JOB_DTYPES, REJECTED_COLUMNS, Normalized
from drs_pipeline.warehouse.store import Warehouse

STATUSES = (statuses.VALIDATING, statuses.VALIDATE_SUCCESS, statuses.VALIDATE_FAILED)
CHANGED_TO = statuses.COMMIT_SUCCESS
OWNERS = (("acme-data", "dba-li"), ("northwind", "migrator"), ("tenant-zhou", "sync-svc"))
FIRST_SEEN = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def merge_once(
    projects: int, jobs_per_project: int, changed_fraction: float, database: str
) -> Result:
    path = Path(database)
    path.unlink(missing_ok=True)
    first = snapshot(projects, jobs_per_project, FIRST_SEEN, 0.0)
    later = FIRST_SEEN + timedelta(minutes=1)
    second = snapshot(projects, jobs_per_project, later, changed_fraction)
    with Warehouse(path) as warehouse:
        warehouse.apply_project_syncs(_syncs(first, "bench-1", FIRST_SEEN))
        syncs = _syncs(second, "bench-2", later)

        con = warehouse.connection
        con.register("plain_snapshot", second)
        con.execute("CREATE OR REPLACE TABLE bench_plain AS FROM plain_snapshot LIMIT 0")
        started = time.perf_counter()
        con.execute("INSERT INTO bench_plain SELECT * FROM plain_snapshot")
        insert_seconds = time.perf_counter() - started
        con.execute("DROP TABLE bench_plain")
        con.unregister("plain_snapshot")

        started = time.perf_counter()
        recorded = warehouse.apply_project_syncs(syncs)
        merge_seconds = time.perf_counter() - started
    return {
        "rows": len(second),
        "merge_seconds": merge_seconds,
        "insert_seconds": insert_seconds,
        "changed": sum(run.changed_jobs for run in recorded),
    }


def snapshot(
    projects: int, jobs_per_project: int, observed_at: datetime, changed_fraction: float
) -> pd.DataFrame:
    """One row per job of every project, as normalization hands them to the merge."""
    n = projects * jobs_per_project
    project = np.repeat(np.arange(projects), jobs_per_project)
    index = np.tile(np.arange(jobs_per_project), projects)
    status = np.array(STATUSES, dtype=object)[index % len(STATUSES)]
    # A fixed, spread-out choice of changed jobs: every k-th job of every project.
    if changed_fraction > 0:
        status[index % round(1 / changed_fraction) == 0] = CHANGED_TO
    owner = index % len(OWNERS)
    # Random-looking ids, as the API's are: sequential ones would let DuckDB skip row
    # groups by their min and max, which real ids never allow.
    project_ids = [_hex(f"project/{p}", 32) for p in range(projects)]
    frame = pd.DataFrame(
        {
            "project_id": np.array(project_ids, dtype=object)[project],
            "region": "cn-south-2",
            "async_job_id": [
                str(uuid.UUID(_hex(f"job/{p}/{i}", 32), version=4))
                for p, i in zip(project, index, strict=True)
            ],
            "status": status,
            "domain_name": np.array([d for d, _ in OWNERS], dtype=object)[owner],
            "user_name": np.array([u for _, u in OWNERS], dtype=object)[owner],
            "create_time": pd.Timestamp("2026-11-27", tz="UTC") + pd.to_timedelta(index, unit="s"),
            "observed_at": pd.Timestamp(observed_at),
        },
        index=pd.RangeIndex(n),
    )
    return frame.astype(JOB_DTYPES)


def _hex(key: str, digits: int) -> str:
    return hashlib.blake2b(key.encode(), digest_size=digits // 2).hexdigest()


def _syncs(frame: pd.DataFrame, sync_id: str, at: datetime) -> list[ProjectSync]:
    rejected = pd.DataFrame(columns=list(REJECTED_COLUMNS), dtype="str")
    syncs = []
    for project_id, jobs in frame.groupby("project_id", sort=False):
        run = SyncRunRow(
            sync_id=sync_id,
            project_id=str(project_id),
            started_at=at,
            finished_at=at,
            outcome="ok",
            error=None,
            pages=1,
            jobs_seen=len(jobs),
            total_count=len(jobs),
        )
        normalized = Normalized(jobs=jobs.reset_index(drop=True), rejected=rejected)
        syncs.append(ProjectSync(run, normalized, frozenset(), at))
    return syncs
