"""The ingest asset: every page of every configured project into the DuckDB history.

Thin on purpose: the work is ``drs_pipeline.sync.run_sync``; this module turns
its report into Dagster metadata. A project that failed does not fail this
step (the others landed, and the marts should show them): the blocking check
``every_project_synced_ok`` fails the run instead, naming the project.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from drs_pipeline.collector import bulk_allocation
from drs_pipeline.config import ConfigError
from drs_pipeline.defs.resources import (
    DrsApiResource,
    HistoryDatabaseResource,
    configuration_failure,
)
from drs_pipeline.defs.specs import database_metadata, table_key, table_specs
from drs_pipeline.report import outcome_table_markdown, status_preview_markdown
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.catalog import ASYNC_JOBS, HISTORY, SYNC_RUNS
from drs_pipeline.warehouse.store import WarehouseLockedError, table_row_counts


@dg.multi_asset(
    specs=table_specs(HISTORY, group_name="ingest", kinds={"duckdb", "table"}),
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
        # The entry point sets the collector for a sync's bulk allocation
        # (docs/decisions/0004-gc-setting.md); the command line runs this step too.
        with bulk_allocation():
            report = run_sync(settings, database, lock_timeout_s=history_db.lock_timeout_s)
    except WarehouseLockedError as exc:
        raise dg.Failure(description=str(exc)) from None
    except ConfigError as exc:  # the database holds the other kind of history
        raise configuration_failure(exc) from None

    with history_db.get_connection(read_only=True) as con:
        counts = table_row_counts(con, HISTORY)
        preview = status_preview_markdown(con)
    shared = {
        "sync_id": report.sync_id,
        **database_metadata(database),
        "source": settings.source,
    }
    for table in HISTORY:
        metadata: dict[str, Any] = {**shared, "dagster/row_count": counts[table.name]}
        if table == SYNC_RUNS:
            metadata["projects"] = dg.MetadataValue.md(outcome_table_markdown(report))
        if table == ASYNC_JOBS:
            metadata["preview"] = dg.MetadataValue.md(preview)
        yield dg.MaterializeResult(asset_key=table_key(table), metadata=metadata)

    for project in report.projects:
        if project.run.outcome != "ok":
            context.log.warning(
                f"project {project.run.project_id}: {project.run.outcome}: {project.run.error}"
            )
