"""The ingest asset: every page of every configured project into the DuckDB history.

Thin on purpose: the work is ``drs_pipeline.sync.run_sync``; this module turns
its report into Dagster metadata. A project that failed does not fail this
step (the others landed, and the marts should show them): the blocking check
``every_project_synced_ok`` fails the run instead, naming the project.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from drs_pipeline.config import ConfigError
from drs_pipeline.defs.resources import (
    DrsApiResource,
    HistoryDatabaseResource,
    configuration_failure,
)
from drs_pipeline.defs.specs import table_specs
from drs_pipeline.report import outcome_table_markdown, status_preview_markdown
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.store import WarehouseLockedError, table_row_counts

HISTORY_TABLES = {
    "async_jobs": "Current state of every batch async job ever seen, one row per project and job.",
    "async_job_history": "Every interval a job spent in one status and owner (SCD2).",
    "sync_runs": "One row per project per sync: outcome, pages, counts, error.",
    "rejected_records": "Records the API returned that could not be read, with the reason.",
}


@dg.multi_asset(
    specs=table_specs(HISTORY_TABLES, group_name="ingest", kinds={"duckdb"}),
    name="drs_sync",
    pool="duckdb",
    # For what the client's own retries cannot cover (the database locked by
    # another process, a crash); configuration errors are raised as not retryable.
    retry_policy=dg.RetryPolicy(
        max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
)
def drs_sync(
    context: dg.AssetExecutionContext,
    drs_api: DrsApiResource,
    history_db: HistoryDatabaseResource,
) -> Iterator[dg.MaterializeResult[None]]:
    """List every configured DRS project and merge what it holds into the history."""
    settings = drs_api.settings_for_run()
    database = history_db.resolved_path()
    try:
        report = run_sync(settings, database, lock_timeout_s=history_db.lock_timeout_s)
    except WarehouseLockedError as exc:
        raise dg.Failure(description=str(exc)) from None
    except ConfigError as exc:  # the database holds the other kind of history
        raise configuration_failure(exc) from None

    counts = table_row_counts(database)
    shared = {
        "sync_id": report.sync_id,
        "database": str(database),
        "source": settings.source,
    }
    for table in HISTORY_TABLES:
        metadata: dict[str, Any] = {**shared, "dagster/row_count": counts[table]}
        if table == "sync_runs":
            metadata["projects"] = dg.MetadataValue.md(outcome_table_markdown(report))
        if table == "async_jobs":
            metadata["preview"] = dg.MetadataValue.md(status_preview_markdown(database))
        yield dg.MaterializeResult(asset_key=dg.AssetKey(["drs", table]), metadata=metadata)

    for project in report.projects:
        if project.run.outcome != "ok":
            context.log.warning(
                f"project {project.run.project_id}: {project.run.outcome}: {project.run.error}"
            )
