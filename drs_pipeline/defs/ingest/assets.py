"""The ingest asset: the selected projects' pages merged into the DuckDB history.

Thin on purpose: the work is ``drs_pipeline.sync.run_sync``; this module picks the
projects of the run's partitions and turns the report into Dagster events.

The four tables are partitioned by project (docs/decisions/0011-partitions.md).
``drs/sync_runs`` materializes only the partitions of the projects that synced
ok, so that a project that did not shows as its partition failed when the check
``every_project_synced_ok`` fails the run. The other three materialize every
selected partition: the marts depend on them, and Dagster skips a step whose
upstream output is missing. A project that failed does not fail this step.
"""

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from drs_pipeline.collector import bulk_allocation
from drs_pipeline.config import ConfigError, ProjectSettings, Settings
from drs_pipeline.defs.ingest.partitions import ProjectPartitions
from drs_pipeline.defs.resources import (
    DrsApiResource,
    HistoryDatabaseResource,
    configuration_failure,
)
from drs_pipeline.defs.specs import database_metadata, table_key, table_specs
from drs_pipeline.report import outcome_table_markdown, status_previews_by_project
from drs_pipeline.sync import OK, ProjectResult, run_sync
from drs_pipeline.warehouse.catalog import ASYNC_JOBS, HISTORY, SYNC_RUNS
from drs_pipeline.warehouse.store import WarehouseLockedError, table_row_counts_by_project

# Every selected partition of these materializes; sync_runs' only when its project synced ok.
ALWAYS = tuple(table for table in HISTORY if table != SYNC_RUNS)

DESCRIPTION = (
    "List every selected DRS project (a partition each) and merge what it holds into the "
    "history, all in one run and one merge batch."
)


def build_drs_sync(partitions: ProjectPartitions) -> dg.AssetsDefinition:
    """The ingest multi-asset, partitioned by project (unpartitioned when the
    configuration could not be read, saying why)."""
    problem = f" Not partitioned by project: {partitions.problem}" if partitions.problem else ""
    specs = [
        spec.replace_attributes(
            description=f"{spec.description}{problem}",
            partitions_def=partitions.partitions_def,
            freshness_policy=partitions.freshness_policy,
            skippable=table == SYNC_RUNS,
        )
        for spec, table in zip(
            table_specs(HISTORY, group_name="ingest", kinds={"duckdb", "table"}),
            HISTORY,
            strict=True,
        )
    ]
    partitioned = partitions.partitions_def is not None

    @dg.multi_asset(
        specs=specs,
        name="drs_sync",
        description=DESCRIPTION,
        pool="duckdb",
        # One run syncs every selected project, so that their merges stay batched.
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
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
        settings = drs_api.settings_for_run()
        selected = (
            selected_projects(settings, context.partition_keys)
            if partitioned
            else settings.projects
        )
        database = history_db.resolved_path()
        try:
            # The entry point sets the collector for a sync's bulk allocation
            # (docs/decisions/0004-gc-setting.md); the command line runs this step too.
            with bulk_allocation():
                report = run_sync(
                    dataclasses.replace(settings, projects=selected),
                    database,
                    lock_timeout_s=history_db.lock_timeout_s,
                )
        except WarehouseLockedError as exc:
            raise dg.Failure(description=str(exc)) from None
        except ConfigError as exc:  # the database holds the other kind of history
            raise configuration_failure(exc) from None

        with history_db.get_connection(read_only=True) as con:
            rows = table_row_counts_by_project(con, HISTORY)
            previews = status_previews_by_project(con)
        shared: dict[str, Any] = {
            "sync_id": report.sync_id,
            **database_metadata(database),
            "source": settings.source,
        }
        for project in report.projects:
            metadata = project_metadata(project)
            project_id = project.run.project_id
            if project.run.outcome != OK:
                context.log.warning(
                    f"project {project_id}: {project.run.outcome}: {project.run.error}"
                )
            if not partitioned:
                continue
            for table in ALWAYS:
                scoped = {**metadata, "dagster/row_count": rows[table.name].get(project_id, 0)}
                if table == ASYNC_JOBS:
                    scoped["preview"] = dg.MetadataValue.md(previews.get(project_id, "(no jobs)"))
                context.add_asset_metadata(
                    scoped, asset_key=table_key(table), partition_key=project_id
                )
            if project.run.outcome == OK:
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=table_key(SYNC_RUNS),
                        partition=project_id,
                        metadata={
                            **shared,
                            **metadata,
                            "dagster/row_count": rows[SYNC_RUNS.name].get(project_id, 0),
                        },
                    )
                )
        if partitioned:
            for table in ALWAYS:
                yield dg.MaterializeResult(asset_key=table_key(table), metadata=shared)
            return
        # Not partitioned (the configuration was fixed after the code location loaded).
        for table in HISTORY:
            metadata = {**shared, "dagster/row_count": sum(rows[table.name].values())}
            if table == SYNC_RUNS:
                metadata["projects"] = dg.MetadataValue.md(outcome_table_markdown(report))
            yield dg.MaterializeResult(asset_key=table_key(table), metadata=metadata)

    return drs_sync


def selected_projects(
    settings: Settings, project_ids: Sequence[str]
) -> tuple[ProjectSettings, ...]:
    """The configured projects of the run's partitions, in the configuration's order."""
    configured = {project.project_id: project for project in settings.projects}
    unknown = [project_id for project_id in project_ids if project_id not in configured]
    if unknown:
        # The code location read another configuration when it loaded.
        raise dg.Failure(
            description=f"configuration error: {settings.source}: projects: "
            f"{', '.join(unknown)} not configured any more; reload the code location so that "
            "its partitions are the configured projects",
            allow_retries=False,
        )
    wanted = set(project_ids)
    return tuple(project for project in settings.projects if project.project_id in wanted)


def project_metadata(project: ProjectResult) -> dict[str, Any]:
    """One project's part of a sync, as metadata of its partition."""
    run = project.run
    return {
        "outcome": run.outcome,
        "error": run.error or "",
        "region": project.region,
        "pages": run.pages,
        "jobs_seen": run.jobs_seen,
        "new_jobs": run.new_jobs,
        "changed_jobs": run.changed_jobs,
        "gone_jobs": run.gone_jobs,
        "rejected_records": run.rejected_records,
        "requests": run.requests,
    }
