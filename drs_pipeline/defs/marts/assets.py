"""The marts: status counts, durations and stuck jobs, rebuilt from the history."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.defs.specs import table_specs
from drs_pipeline.report import mart_preview_markdown
from drs_pipeline.warehouse.marts import build_marts

MART_TABLES = {
    "status_counts": "Jobs present now per tenant, user and status.",
    "status_counts_by_project": "status_counts with project_id and region.",
    "duration_samples": "Every measured duration: validation, time_to_commit, dwell:<STATUS>.",
    "job_durations": "Duration statistics per tenant, user and metric (mean, p50, p90, max).",
    "job_durations_by_project": "job_durations with project_id and region.",
    "stuck_jobs": "Jobs present now that stayed in a status longer than its threshold.",
}
PREVIEWED = ("status_counts", "job_durations", "stuck_jobs")


@dg.multi_asset(
    specs=table_specs(
        MART_TABLES,
        group_name="marts",
        kinds={"duckdb", "sql"},
        deps=[dg.AssetKey(["drs", "async_jobs"]), dg.AssetKey(["drs", "async_job_history"])],
    ),
    name="drs_marts",
    pool="duckdb",
)
def drs_marts(
    drs_api: DrsApiResource, history_db: HistoryDatabaseResource
) -> Iterator[dg.MaterializeResult[None]]:
    """Rebuild every mart from drs.async_jobs and drs.async_job_history in one transaction."""
    settings = drs_api.settings_for_run()
    database = history_db.resolved_path()
    counts = build_marts(
        database,
        stuck_thresholds_s=settings.stuck_thresholds_s,
        as_of=datetime.now(UTC),
        lock_timeout_s=history_db.lock_timeout_s,
    )
    for table in MART_TABLES:
        metadata: dict[str, Any] = {"dagster/row_count": counts[table]}
        if table in PREVIEWED:
            metadata["preview"] = dg.MetadataValue.md(mart_preview_markdown(database, table))
        yield dg.MaterializeResult(asset_key=dg.AssetKey(["drs", table]), metadata=metadata)
