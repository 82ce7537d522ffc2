"""The marts: project status, status counts, durations and stuck jobs, rebuilt from the history."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.defs.specs import database_metadata, table_key, table_specs
from drs_pipeline.report import mart_preview_markdown
from drs_pipeline.warehouse.catalog import (
    ASYNC_JOB_HISTORY,
    ASYNC_JOBS,
    JOB_DURATIONS,
    MARTS,
    PROJECT_STATUS,
    STATUS_COUNTS,
    STUCK_JOBS,
)
from drs_pipeline.warehouse.marts import build_marts

PREVIEWED = (PROJECT_STATUS, STATUS_COUNTS, JOB_DURATIONS, STUCK_JOBS)


@dg.multi_asset(
    specs=table_specs(
        MARTS,
        group_name="marts",
        kinds={"duckdb", "sql", "table"},
        # Not drs/sync_runs, though project_status reads it: it materializes only the
        # projects that synced ok, and Dagster would skip the marts when none did; they
        # must rebuild and flag them stale (docs/decisions/0011-partitions.md).
        deps=[table_key(ASYNC_JOBS), table_key(ASYNC_JOB_HISTORY)],
    ),
    name="drs_marts",
    pool="duckdb",
)
def drs_marts(
    drs_api: DrsApiResource, history_db: HistoryDatabaseResource
) -> Iterator[dg.MaterializeResult[None]]:
    """Rebuild every mart from the history and the configured projects in one transaction."""
    settings = drs_api.settings_for_run()
    database = history_db.resolved_path()
    counts = build_marts(
        database,
        stuck_thresholds_s=settings.stuck_thresholds_s,
        as_of=datetime.now(UTC),
        configured_projects={p.project_id: p.region for p in settings.projects},
        freshness_minutes=settings.freshness_minutes,
        lock_timeout_s=history_db.lock_timeout_s,
    )
    with history_db.get_connection(read_only=True) as con:
        previews = {table: mart_preview_markdown(con, table.name) for table in PREVIEWED}
    for table in MARTS:
        metadata: dict[str, Any] = {
            "dagster/row_count": counts[table.name],
            **database_metadata(database),
        }
        if table in previews:
            metadata["preview"] = dg.MetadataValue.md(previews[table])
        yield dg.MaterializeResult(asset_key=table_key(table), metadata=metadata)
