"""The alerts step: raised from the marts, posted to the webhooks (drs_pipeline.alerts).

After the marts it reads, and not after drs/sync_runs: its blocking check fails on a
failed project, which is when alerts matter most. A webhook that fails does not fail
the step: it is named in the metadata and the log, and tried again next run.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from drs_pipeline.alerts import AlertReport, run_alerts
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.defs.specs import database_metadata, table_key, table_specs
from drs_pipeline.warehouse.catalog import (
    ALERT_DELIVERIES,
    ALERTS,
    ALERTS_GROUP,
    PROJECT_STATUS,
    STATUS_TRANSITIONS,
    STUCK_JOBS,
)
from drs_pipeline.warehouse.store import WarehouseLockedError, table_row_counts


@dg.multi_asset(
    specs=table_specs(
        ALERTS_GROUP,
        group_name="alerts",
        kinds={"duckdb", "table"},
        deps=[table_key(PROJECT_STATUS), table_key(STUCK_JOBS), table_key(STATUS_TRANSITIONS)],
    ),
    name="drs_alerts",
    pool="duckdb",
)
def drs_alerts(
    context: dg.AssetExecutionContext,
    drs_api: DrsApiResource,
    history_db: HistoryDatabaseResource,
) -> Iterator[dg.MaterializeResult[None]]:
    """Raise what is new (stuck or failed jobs, failing, recovered or stale projects),
    each once, and post to each webhook what it has not accepted yet."""
    settings = drs_api.settings_for_run()
    database = history_db.resolved_path()
    try:
        report = run_alerts(
            database, settings, now=datetime.now(UTC), lock_timeout_s=history_db.lock_timeout_s
        )
    except WarehouseLockedError as exc:
        raise dg.Failure(description=str(exc)) from None
    for outcome in report.outcomes:
        if outcome.line is not None:
            (context.log.info if outcome.error is None else context.log.warning)(outcome.line)

    with history_db.get_connection(read_only=True) as con:
        counts = table_row_counts(con, ALERTS_GROUP)
    for table in ALERTS_GROUP:
        metadata = {"dagster/row_count": counts[table.name], **database_metadata(database)}
        if table == ALERTS:
            metadata |= {
                "raised": sum(report.raised.values()),
                "raised_by_kind": dg.MetadataValue.md(_raised_markdown(report)),
            }
        if table == ALERT_DELIVERIES:
            metadata |= {
                "webhooks_not_delivered": len(report.failed),
                "pending": sum(report.pending.values()),
                "webhooks": dg.MetadataValue.md(_webhooks_markdown(report)),
            }
        yield dg.MaterializeResult(asset_key=table_key(table), metadata=metadata)


def _raised_markdown(report: AlertReport) -> str:
    rows = sorted(report.raised.items())
    return str(pd.DataFrame(rows, columns=["kind", "raised"]).to_markdown(index=False))


def _webhooks_markdown(report: AlertReport) -> str:
    rows = [
        [o.webhook, o.format, o.sent, o.outcome, o.error or "", report.pending.get(o.webhook, 0)]
        for o in report.outcomes
    ]
    columns = ["webhook", "format", "sent", "outcome", "error", "pending"]
    return str(pd.DataFrame(rows, columns=columns).to_markdown(index=False))
