"""The job the daemon runs, and its schedule (``schedule:`` in drs.yaml)."""

import logging

import dagster as dg

from drs_pipeline.config import DEFAULT_SCHEDULE, ConfigError, load_schedule
from drs_pipeline.defs.ingest.partitions import ProjectPartitions, range_tags

log = logging.getLogger(__name__)

# Every asset and check, in one process: DuckDB allows one writer per file, so
# the steps of a run take turns on it instead of competing for its lock.
drs_pipeline_job = dg.define_asset_job(
    name="drs_pipeline_job",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Sync the selected DRS projects (a partition each; the schedule selects them "
    "all), check the history, rebuild the marts.",
)

SCHEDULE_DESCRIPTION = (
    "Runs drs_pipeline_job on the cron of drs.yaml's `schedule` (UTC), every project in one run."
)


def schedules(partitions: ProjectPartitions) -> dg.Definitions:
    # Read when definitions load (not at import): the cron comes from drs.yaml. A broken
    # file must not take the code location down with it: the schedule keeps the default
    # cron and says why, and each run fails at once with the same error (drs_sync).
    try:
        schedule = _schedule(load_schedule(), SCHEDULE_DESCRIPTION, partitions)
    except ConfigError as exc:
        schedule = _fallback(
            f"configuration error: {exc}", "each run fails with that error", partitions
        )
    except dg.DagsterInvalidDefinitionError as exc:
        # A cron whose every field is valid but that never fires ('0 0 30 2 *').
        schedule = _fallback(
            f"the schedule of drs.yaml: {exc}", "runs are not affected", partitions
        )
    return dg.Definitions(jobs=[drs_pipeline_job], schedules=[schedule])


def _fallback(
    problem: str, consequence: str, partitions: ProjectPartitions
) -> dg.ScheduleDefinition:
    log.warning("%s; the schedule runs on the default cron %s", problem, DEFAULT_SCHEDULE)
    return _schedule(
        DEFAULT_SCHEDULE,
        f"{problem}. Until it is fixed this schedule runs on the default cron "
        f"({DEFAULT_SCHEDULE}), and {consequence}.",
        partitions,
    )


def _schedule(cron: str, description: str, partitions: ProjectPartitions) -> dg.ScheduleDefinition:
    # Every partition in one run (a single-run backfill of the range of all of them),
    # so that the projects' merges stay batched.
    keys = partitions.partitions_def.get_partition_keys() if partitions.partitions_def else []
    tags = range_tags(keys)

    @dg.schedule(
        name="drs_pipeline_schedule",
        job=drs_pipeline_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def drs_pipeline_schedule() -> dg.RunRequest:
        return dg.RunRequest(tags=tags)

    return drs_pipeline_schedule
