"""Checks on the marts."""

import dagster as dg

from drs_pipeline.defs.ingest.checks import rows_markdown
from drs_pipeline.defs.resources import HistoryDatabaseResource
from drs_pipeline.warehouse.store import connect

STUCK_SQL = """
SELECT project_id, async_job_id, domain_name, user_name, status,
       round(stuck_for_s / 3600, 1) AS stuck_hours, round(threshold_s / 3600, 1) AS threshold_hours
FROM drs.stuck_jobs ORDER BY stuck_for_s DESC
"""


@dg.asset_check(
    asset=dg.AssetKey(["drs", "stuck_jobs"]),
    description="Jobs stuck in a status past its threshold (a warning, with the list).",
)
def no_stuck_jobs(history_db: HistoryDatabaseResource) -> dg.AssetCheckResult:
    with connect(history_db.resolved_path(), read_only=True) as con:
        stuck = con.execute(STUCK_SQL).df()
    return dg.AssetCheckResult(
        passed=stuck.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(stuck)} jobs stuck",
        metadata={"stuck_jobs": len(stuck), "stuck": rows_markdown(stuck)},
    )
