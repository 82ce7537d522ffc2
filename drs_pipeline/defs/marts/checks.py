"""Checks on the marts."""

import dagster as dg

from drs_pipeline.defs.ingest.checks import rows_markdown, violations_result
from drs_pipeline.defs.resources import HistoryDatabaseResource
from drs_pipeline.defs.specs import table_key
from drs_pipeline.warehouse import health
from drs_pipeline.warehouse.catalog import DURATION_SAMPLES, STUCK_JOBS
from drs_pipeline.warehouse.queries import read_query


@dg.asset_check(
    asset=table_key(STUCK_JOBS),
    description="Jobs stuck in a status past its threshold (a warning, with the list).",
)
def no_stuck_jobs(history_db: HistoryDatabaseResource) -> dg.AssetCheckResult:
    with history_db.get_connection(read_only=True) as con:
        stuck = read_query(con, "stuck_jobs_in_hours")
    return dg.AssetCheckResult(
        passed=stuck.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(stuck)} jobs stuck",
        metadata={"stuck_jobs": len(stuck), "stuck": rows_markdown(stuck)},
    )


@dg.asset_check(
    asset=table_key(DURATION_SAMPLES),
    blocking=True,
    description="No negative duration, low_s <= high_s, and every transition's not_before "
    "before its not_after: anything else is a bug, and is not published.",
)
def durations_are_bounded(history_db: HistoryDatabaseResource) -> dg.AssetCheckResult:
    with history_db.get_connection(read_only=True) as con:
        broken = health.mart_violations(con)
    return violations_result(broken, counted_as="broken_promises", if_none="every bound holds")
