"""The watch's sensor: a round every ``watch.seconds`` while there is something to watch.

It requests a run of ``drs_watch_job`` only when the history holds a present job
in a watched status, and never while the sync job or another round is queued or
running (one writer of the DuckDB file). It reads the readers' copy, read-only:
the history itself is held by a sync's writer in another process while it runs.
"""

import logging

import dagster as dg
import duckdb

from drs_pipeline.config import DEFAULT_WATCH_SECONDS, ConfigError, load_watch
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.defs.schedules import drs_pipeline_job
from drs_pipeline.defs.watch.jobs import drs_watch_job
from drs_pipeline.warehouse.store import WarehouseLockedError
from drs_pipeline.watch import count_watched_jobs

log = logging.getLogger(__name__)

# The jobs that write the history: while one of them is queued or running, a round
# would only wait for the lock.
WRITERS = (drs_pipeline_job.name, drs_watch_job.name)
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

SENSOR_DESCRIPTION = (
    "Runs drs_watch_job every watch.seconds of drs.yaml while the published copy holds a job "
    "in a watched status, and never while drs_pipeline_job or drs_watch_job is queued or running."
)


def writer_in_progress(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """A run of a job that writes the history, queued or in progress, if there is one."""
    for job_name in WRITERS:
        runs = instance.get_runs(
            filters=dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS), limit=1
        )
        if runs:
            return runs[0]
    return None


def build_watch_sensor(seconds: int, description: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="drs_watch_sensor",
        # By name: with the job object, Dagster re-creates the sensor when it binds the
        # resources and warns that a parameter of its own (owners) is in beta.
        job_name=drs_watch_job.name,
        minimum_interval_seconds=seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def drs_watch_sensor(
        context: dg.SensorEvaluationContext,
        drs_api: DrsApiResource,
        history_db: HistoryDatabaseResource,
    ) -> dg.RunRequest | dg.SkipReason:
        busy = writer_in_progress(context.instance)
        if busy is not None:
            return dg.SkipReason(
                f"{busy.job_name} run {busy.run_id} is {busy.status.value.lower()}: "
                "the watch waits for it (one writer of the history)"
            )
        try:
            settings = drs_api.settings()
        except ConfigError as exc:
            return dg.SkipReason(f"configuration error: {exc}")
        if not settings.watch.statuses:
            return dg.SkipReason(f"the watch is off: watch.statuses is empty in {settings.source}")
        published = history_db.resolved_published_path()
        if not published.exists():
            return dg.SkipReason(
                f"no published copy at {published} yet: the watch starts after a sync publishes one"
            )
        try:
            jobs, published_at = count_watched_jobs(published, settings)
        except (duckdb.Error, WarehouseLockedError) as exc:
            return dg.SkipReason(f"the published copy {published} could not be read: {exc}")
        watched = ", ".join(settings.watch.statuses)
        if not jobs:
            return dg.SkipReason(
                "no job of the configured projects (but those whose latest sync failed) is "
                f"in a watched status ({watched}) in "
                f"the copy published at {published_at.isoformat() if published_at else '?'}"
            )
        return dg.RunRequest(tags={"drs/watched_jobs": str(jobs)})

    return drs_watch_sensor


@dg.definitions
def watch() -> dg.Definitions:
    # Read when definitions load: the interval comes from drs.yaml. A broken file keeps
    # the code location (the sensor on the default interval, saying why); each tick
    # then skips with the same error.
    try:
        sensor = build_watch_sensor(load_watch().seconds, SENSOR_DESCRIPTION)
    except ConfigError as exc:
        log.warning(
            "configuration error: %s; the watch's sensor runs every %d s",
            exc,
            DEFAULT_WATCH_SECONDS,
        )
        sensor = build_watch_sensor(
            DEFAULT_WATCH_SECONDS,
            f"configuration error: {exc}. Until it is fixed this sensor ticks every "
            f"{DEFAULT_WATCH_SECONDS} s and skips each tick with that error.",
        )
    return dg.Definitions(jobs=[drs_watch_job], sensors=[sensor])
