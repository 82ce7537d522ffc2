"""Checks on the history after every sync. Each failing check names the rows.

The history invariants are also verified inside each project's transaction
before it commits (warehouse.store); this check is the second line, over the
whole file, and blocks the marts when it fails.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.defs.specs import table_key
from drs_pipeline.warehouse import health
from drs_pipeline.warehouse.catalog import ASYNC_JOB_HISTORY, ASYNC_JOBS, REJECTED_RECORDS

SAMPLE_ROWS = 20


def rows_markdown(rows: pd.DataFrame, limit: int = SAMPLE_ROWS) -> dg.MetadataValue:
    text = str(rows.head(limit).to_markdown(index=False))
    if len(rows) > limit:
        text += f"\n\n({len(rows) - limit} more rows)"
    return dg.MetadataValue.md(text)


@dg.asset_check(
    asset=table_key(ASYNC_JOB_HISTORY),
    blocking=True,
    description="One open interval per present job, none per gone job; no overlap; "
    "valid_from < valid_to; last_seen_at within its interval; the current state "
    "matches the open interval.",
)
def history_invariants(history_db: HistoryDatabaseResource) -> dg.AssetCheckResult:
    with history_db.get_connection(read_only=True) as con:
        broken = health.invariant_violations(con)
    return violations_result(broken, counted_as="broken_invariants", if_none="all invariants hold")


def violations_result(
    broken: dict[str, pd.DataFrame], *, counted_as: str, if_none: str
) -> dg.AssetCheckResult:
    """A check's result from health's broken promises: passed when there are none,
    else each named with a sample of its rows."""
    metadata: dict[str, dg.MetadataValue] = {
        f"{name} (sample)": rows_markdown(rows) for name, rows in broken.items()
    }
    return dg.AssetCheckResult(
        passed=not broken,
        description=health.describe_violations(broken) if broken else if_none,
        metadata={counted_as: len(broken), **metadata},
    )


@dg.asset_check(
    # On drs/rejected_records, the one ingest table nothing depends on: its failure fails
    # the run, and so shows each project not ok as its partition of drs/sync_runs
    # failed, without holding back the marts (docs/decisions/0011-partitions.md).
    asset=table_key(REJECTED_RECORDS),
    blocking=True,
    description="Every project the run selected synced ok. Fails the run (the marts still "
    "rebuild from what landed), naming each project and its error; the partition of "
    "drs/sync_runs of each of them shows failed.",
)
def every_project_synced_ok(
    context: dg.AssetCheckExecutionContext,
    drs_api: DrsApiResource,
    history_db: HistoryDatabaseResource,
) -> dg.AssetCheckResult:
    selected = (
        list(context.partition_keys)
        if context.has_partition_key or context.has_partition_key_range
        else [p.project_id for p in drs_api.settings().projects]
    )
    with history_db.get_connection(read_only=True) as con:
        runs = health.latest_sync_runs(con)
    bad = health.projects_not_ok(runs, selected)
    lines = [f"{r.project_id}: {r.outcome}: {r.error}" for r in bad.itertuples()]
    return dg.AssetCheckResult(
        passed=bad.empty,
        description="\n".join(lines) if lines else f"{len(selected)} projects ok",
        metadata={
            "sync_id": str(runs["sync_id"].iloc[0]) if not runs.empty else "",
            "projects_not_ok": len(bad),
            "not_ok": rows_markdown(bad),
        },
    )


@dg.asset_check(
    asset=table_key(REJECTED_RECORDS),
    description="Records the API returned in this sync that could not be read (a warning).",
)
def no_rejected_records(history_db: HistoryDatabaseResource) -> dg.AssetCheckResult:
    with history_db.get_connection(read_only=True) as con:
        runs = health.latest_sync_runs(con)
        rejected = (
            pd.DataFrame(columns=["project_id", "reason", "record"])
            if runs.empty
            else health.rejected_in_sync(con, str(runs["sync_id"].iloc[0]))
        )
    return dg.AssetCheckResult(
        passed=rejected.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(rejected)} records rejected in the latest sync",
        metadata={"rejected": len(rejected), "sample": rows_markdown(rejected)},
    )


@dg.asset_check(
    asset=table_key(ASYNC_JOBS),
    description="Every configured project had an ok sync within freshness_minutes.",
)
def history_is_fresh(
    drs_api: DrsApiResource, history_db: HistoryDatabaseResource
) -> dg.AssetCheckResult:
    settings = drs_api.settings()
    max_age = timedelta(minutes=settings.freshness_minutes)
    with history_db.get_connection(read_only=True) as con:
        stale = health.stale_projects(
            con, [p.project_id for p in settings.projects], max_age=max_age, now=datetime.now(UTC)
        )
    return dg.AssetCheckResult(
        passed=stale.empty,
        description=f"{len(stale)} projects without an ok sync in the last "
        f"{settings.freshness_minutes:g} minutes",
        metadata={"stale_projects": len(stale), "stale": rows_markdown(stale)},
    )
