"""The job the daemon runs, and its schedule (``schedule:`` in drs.yaml)."""

import dagster as dg

from drs_pipeline.config import load_schedule

# Every asset and check, in one process: DuckDB allows one writer per file, so
# the steps of a run take turns on it instead of competing for its lock.
drs_pipeline_job = dg.define_asset_job(
    name="drs_pipeline_job",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Sync every configured DRS project, check the history, rebuild the marts.",
)


@dg.definitions
def schedules() -> dg.Definitions:
    # Read when definitions load (not at import): the cron comes from drs.yaml.
    schedule = dg.ScheduleDefinition(
        name="drs_pipeline_schedule",
        job=drs_pipeline_job,
        cron_schedule=load_schedule(),
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(jobs=[drs_pipeline_job], schedules=[schedule])
