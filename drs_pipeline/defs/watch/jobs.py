"""The watch's job: one round of ``drs_pipeline.watch.run_watch``, between syncs.

An op job, not an asset job: a round adds observations to the history, it
rebuilds no asset (the marts and the readers' copy wait for the next sync,
docs/watch.md). What it saw is logged as an observation of the two history
tables it wrote to.
"""

from typing import Any

import dagster as dg

from drs_pipeline.config import ConfigError
from drs_pipeline.defs.resources import (
    DrsApiResource,
    HistoryDatabaseResource,
    configuration_failure,
)
from drs_pipeline.defs.specs import database_metadata, table_key, tags
from drs_pipeline.warehouse.catalog import ASYNC_JOB_HISTORY, ASYNC_JOBS
from drs_pipeline.warehouse.store import WarehouseLockedError
from drs_pipeline.watch import WatchReport, run_watch


@dg.op(
    name="drs_watch",
    # The ingest's pool: one writer of the DuckDB file at a time.
    pool="duckdb",
    tags=tags("watch"),
    description="List the jobs in a watched status of every configured project, look up by "
    "id the watched jobs they lacked, and merge what was seen into the history.",
)
def drs_watch(
    context: dg.OpExecutionContext,
    drs_api: DrsApiResource,
    history_db: HistoryDatabaseResource,
) -> dg.Output[None]:
    settings = drs_api.settings_for_run()
    database = history_db.resolved_path()
    try:
        report = run_watch(settings, database, lock_timeout_s=history_db.lock_timeout_s)
    except WarehouseLockedError as exc:
        raise dg.Failure(description=str(exc)) from None
    except ConfigError as exc:  # the database holds the other kind of history
        raise configuration_failure(exc) from None

    metadata = {**_metadata(report), **database_metadata(database)}
    for table in (ASYNC_JOBS, ASYNC_JOB_HISTORY):
        context.log_event(dg.AssetObservation(asset_key=table_key(table), metadata=metadata))
    lines = [f"{p.project_id}: {p.outcome}: {p.error}" for p in report.not_ok]
    for line in lines:
        context.log.warning(line)
    if report.failed:
        # The others landed; a project the watch could not list fails the run, as it
        # fails the sync's, so that it is seen.
        raise dg.Failure(description="\n".join(lines), metadata=metadata, allow_retries=False)
    return dg.Output(None, metadata=metadata)


def _metadata(report: WatchReport) -> dict[str, Any]:
    return {
        "watch_id": report.watch_id,
        "statuses": ", ".join(report.statuses),
        "projects": len(report.projects),
        "jobs_observed": report.jobs_observed,
        "changed_jobs": report.changed_jobs,
        "new_jobs_left_to_the_next_sync": report.new_jobs_left,
        "requests": report.requests,
    }


@dg.job(
    name="drs_watch_job",
    # One op: run in the launched process, not in a process of its own.
    executor_def=dg.in_process_executor,
    tags=tags("watch"),
    description="One round of the watch: the jobs in a watched status observed between syncs.",
)
def drs_watch_job() -> None:
    drs_watch()
