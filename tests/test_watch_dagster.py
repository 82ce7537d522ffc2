"""The watch in Dagster: drs_watch_job run for real, and drs_watch_sensor evaluated
against a real instance, a real published copy and the simulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from drs_pipeline.definitions import definitions_with_resources, defs
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.defs.watch.sensors import SENSOR_DESCRIPTION
from drs_pipeline.drs import statuses
from drs_pipeline.simulator.faults import ScriptedFault
from drs_pipeline.warehouse.publish import publish

from .helpers import Simulator, query, settings_for, sync, write_config

REQUEST_ID = "5f2c0e1d9b8a47c6a3e4d5f60718293a"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def resources(config: Path, database: Path) -> dict[str, dg.ConfigurableResource]:  # type: ignore[type-arg]
    return {
        "drs_api": DrsApiResource(config_path=str(config)),
        "history_db": HistoryDatabaseResource(path=str(database), lock_timeout_s=2),
    }


def run_watch_job(
    config: Path, database: Path, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    job = definitions_with_resources(resources(config, database)).resolve_job_def("drs_watch_job")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def evaluate_sensor(
    config: Path, database: Path, instance: dg.DagsterInstance
) -> dg.RunRequest | dg.SkipReason:
    sensor = defs().resolve_sensor_def("drs_watch_sensor")
    context = dg.build_sensor_context(instance=instance, resources=resources(config, database))
    data = sensor.evaluate_tick(context)
    if data.run_requests:
        (request,) = data.run_requests
        return request
    return dg.SkipReason(data.skip_message)


def skipped(result: dg.RunRequest | dg.SkipReason) -> str:
    assert isinstance(result, dg.SkipReason), result
    return result.skip_message or ""


def published_copy(database: Path) -> Path:
    return database.with_name(f"{database.stem}_published.duckdb")


def test_the_watch_job_and_sensor_are_in_the_code_location() -> None:
    definitions = defs()
    job = definitions.resolve_job_def("drs_watch_job")
    (node,) = job.nodes
    # The ingest's pool: one writer of the DuckDB file at a time.
    assert (node.name, node.definition.pool) == ("drs_watch", "duckdb")
    assert job.tags == {"domain": "drs", "layer": "watch"}
    sensor = definitions.resolve_sensor_def("drs_watch_sensor")
    assert (sensor.job_name, sensor.minimum_interval_seconds) == ("drs_watch_job", 30)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.description == SENSOR_DESCRIPTION


def test_the_sensor_interval_comes_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text("projects: []\nwatch: {seconds: 12}\n")  # the rest is checked per run
    monkeypatch.setenv("DRS_CONFIG", str(config))
    assert defs().resolve_sensor_def("drs_watch_sensor").minimum_interval_seconds == 12

    config.write_text("projects: []\nwatch: {seconds: 0}\n")
    sensor = defs().resolve_sensor_def("drs_watch_sensor")
    assert sensor.minimum_interval_seconds == 30
    assert sensor.description == (
        f"configuration error: {config}: watch.seconds: must be from 1 to 86400, got 0. "
        "Until it is fixed this sensor ticks every 30 s and skips each tick with that error."
    )


def test_the_watch_job_lands_observations_without_a_sync_run(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project_id = simulator.project_ids[0]
    job_id = simulator.world.add_job(project_id).async_job_id
    config = write_config(tmp_path / "drs.yaml", simulator, [project_id])
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    sync(simulator, settings_for(simulator, tmp_path, [project_id]), database)
    simulator.clock.advance(10)
    simulator.world.set_status(project_id, job_id, statuses.VALIDATE_SUCCESS)

    result = run_watch_job(config, database, instance)

    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert metadata["statuses"] == statuses.VALIDATING
    assert (metadata["projects"], metadata["jobs_observed"], metadata["changed_jobs"]) == (1, 1, 1)
    assert metadata["requests"] == 2  # one listing, one look-up by id
    observed = {e.asset_key for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"}
    assert observed == {
        dg.AssetKey(["drs", "async_jobs"]),
        dg.AssetKey(["drs", "async_job_history"]),
    }
    assert result.get_asset_materialization_events() == []
    assert query(database, "SELECT status FROM drs.async_jobs") == [(statuses.VALIDATE_SUCCESS,)]
    assert query(database, "SELECT count(*) FROM drs.sync_runs") == [(1,)]


def test_a_project_the_watch_cannot_list_fails_the_run_and_the_others_land(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, refused = simulator.project_ids[:2]
    job_id = simulator.world.add_job(good).async_job_id
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    sync(simulator, settings_for(simulator, tmp_path, [good]), database)
    config = write_config(tmp_path / "watch.yaml", simulator, [good, refused])
    simulator.clock.advance(10)
    simulator.world.set_status(good, job_id, statuses.VALIDATE_FAILED)
    simulator.faults.script(
        ScriptedFault(
            status=403,
            body={"error_code": "DRS.M00261", "error_msg": "Invalid project ID."},
            headers={"X-Request-Id": REQUEST_ID},
            project_id=refused,
        )
    )

    result = run_watch_job(config, database, instance)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert data is not None
    assert data.description == (
        f"{refused}: failed: project {refused}, listing status={statuses.VALIDATING}, "
        f"page offset 0: HTTP 403 DRS.M00261: Invalid project ID. (X-Request-Id {REQUEST_ID})"
    )
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert query(database, "SELECT status FROM drs.async_jobs") == [(statuses.VALIDATE_FAILED,)]


def test_the_sensor_runs_the_watch_only_when_there_is_something_to_watch_and_no_writer(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project_id = simulator.project_ids[0]
    world = simulator.world
    job_id = world.add_job(project_id).async_job_id
    world.set_status(project_id, job_id, statuses.COMMIT_SUCCESS)
    config = write_config(tmp_path / "drs.yaml", simulator, [project_id])
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    settings = settings_for(simulator, tmp_path, [project_id])
    copy = published_copy(database)

    # No copy yet: nothing to read.
    assert skipped(evaluate_sensor(config, database, instance)) == (
        f"no published copy at {copy} yet: the watch starts after a sync publishes one"
    )

    # A copy, but no job in a watched status.
    sync(simulator, settings, database)
    first = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    publish(database, copy, published_at=first)
    assert skipped(evaluate_sensor(config, database, instance)) == (
        "no job of the configured projects (but those whose latest sync failed) is in a "
        f"watched status ({statuses.VALIDATING}) "
        "in the copy published at 2026-11-28T12:00:00+00:00"
    )

    # A job validating: a run, unless a writer of the history is queued or running.
    world.add_job(project_id)
    simulator.clock.advance(10)
    sync(simulator, settings, database)
    publish(database, copy, published_at=first)
    request = evaluate_sensor(config, database, instance)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["drs/watched_jobs"] == "1"

    pipeline_job = defs().resolve_job_def("drs_pipeline_job")
    sync_run = instance.create_run_for_job(pipeline_job, status=dg.DagsterRunStatus.STARTED)
    assert skipped(evaluate_sensor(config, database, instance)) == (
        f"drs_pipeline_job run {sync_run.run_id} is started: "
        "the watch waits for it (one writer of the history)"
    )
    instance.report_run_failed(sync_run)

    watch_job = defs().resolve_job_def("drs_watch_job")
    # (A queued run needs the code location's origin, which a test instance lacks.)
    watch_run = instance.create_run_for_job(watch_job, status=dg.DagsterRunStatus.STARTING)
    assert skipped(evaluate_sensor(config, database, instance)) == (
        f"drs_watch_job run {watch_run.run_id} is starting: "
        "the watch waits for it (one writer of the history)"
    )
    instance.report_run_canceled(watch_run)
    assert isinstance(evaluate_sensor(config, database, instance), dg.RunRequest)

    # The project's latest sync failed: a round would fail on it too, every few
    # seconds; its validating jobs wait for a sync that succeeds.
    simulator.faults.script(ScriptedFault(status=403, project_id=project_id, times=99))
    simulator.clock.advance(10)
    assert not sync(simulator, settings, database).all_ok
    publish(database, copy, published_at=first)
    assert skipped(evaluate_sensor(config, database, instance)) == (
        "no job of the configured projects (but those whose latest sync failed) is in a "
        f"watched status ({statuses.VALIDATING}) "
        "in the copy published at 2026-11-28T12:00:00+00:00"
    )


def test_the_sensor_skips_with_a_configuration_error_or_the_watch_off(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    config = write_config(tmp_path / "drs.yaml", simulator, simulator.project_ids[:1], watch="x")
    assert skipped(evaluate_sensor(config, database, instance)) == (
        f"configuration error: {config}: watch: must be a mapping of keys to values"
    )
    config = write_config(
        tmp_path / "drs.yaml", simulator, simulator.project_ids[:1], watch="{statuses: []}"
    )
    assert skipped(evaluate_sensor(config, database, instance)) == (
        f"the watch is off: watch.statuses is empty in {config}"
    )
