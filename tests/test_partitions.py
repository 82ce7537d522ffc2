"""Per-project partitions: real materializations in process, against the simulator
on loopback (docs/decisions/0011-partitions.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from drs_pipeline.config import ConfigError, ProjectLayout, load_layout_file
from drs_pipeline.definitions import definitions_with_resources, defs, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.simulator.faults import ScriptedFault

from .helpers import Simulator, query, write_config

HISTORY = ("async_jobs", "async_job_history", "sync_runs", "rejected_records")
SYNC_RUNS = dg.AssetKey(["drs", "sync_runs"])
ASYNC_JOBS = dg.AssetKey(["drs", "async_jobs"])
MART = dg.AssetKey(["drs", "project_status"])
REFUSAL = {"error_code": "DRS.M00261", "error_msg": "Invalid project ID."}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def pipeline(simulator: Simulator, tmp_path: Path, database: Path) -> dg.Definitions:
    """The code location's job for every simulator project, each with two jobs."""
    for project_id in simulator.project_ids:
        for _ in range(2):
            simulator.world.add_job(project_id)
    config = write_config(tmp_path / "drs.yaml", simulator)
    return definitions_with_resources(
        {
            "drs_api": DrsApiResource(config_path=str(config)),
            "history_db": HistoryDatabaseResource(path=str(database), lock_timeout_s=2),
        }
    )


def partitions_materialized(result: dg.ExecuteInProcessResult) -> set[tuple[str, str | None]]:
    return {
        (event.asset_key.path[-1], event.partition)
        for event in result.get_asset_materialization_events()
        if event.asset_key.path[-1] in HISTORY
    }


def statuses(
    instance: dg.DagsterInstance, definitions: dg.Definitions, key: dg.AssetKey
) -> dict[str, dg.AssetPartitionStatus | None]:
    partitions = definitions.resolve_asset_graph().get(key).partitions_def
    assert partitions is not None
    found = instance.get_status_by_partition(key, partitions.get_partition_keys(), partitions)
    return dict(found or {})


def requested_projects(simulator: Simulator) -> set[str | None]:
    return {record.project_id for record in simulator.app.stats.log}


def test_the_definitions_partition_the_history_by_configured_project(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, third, _ = simulator.project_ids
    config = write_config(tmp_path / "drs.yaml", simulator, [third, first], freshness_minutes=45)
    monkeypatch.setenv("DRS_CONFIG", str(config))
    graph = defs().resolve_asset_graph()
    for table in HISTORY:
        node = graph.get(dg.AssetKey(["drs", table]))
        assert node.partitions_def == dg.StaticPartitionsDefinition([third, first])
        assert node.freshness_policy == dg.FreshnessPolicy.time_window(
            fail_window=timedelta(minutes=45)
        )
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    # The marts and the publication stay whole.
    assert graph.get(MART).partitions_def is None
    assert graph.get(dg.AssetKey(["drs", "published_snapshot"])).partitions_def is None


def test_the_layout_is_read_without_credentials_and_names_a_bad_key(tmp_path: Path) -> None:
    a, b = "a" * 32, "b" * 32
    config = tmp_path / "drs.yaml"
    # No auth variable is set: definitions load without credentials.
    config.write_text(
        f"projects: [{{project_id: '{b}', region: cn-south-2}}, {{project_id: '{a}'}}]\n"
        "auth: {method: token, token_env: NOT_SET_ANYWHERE}\nfreshness_minutes: 30\n"
    )
    assert load_layout_file(config) == ProjectLayout((b, a), 30.0)
    for text, problem in [
        ("projects: []\n", "projects: must be a non-empty list"),
        (
            f"projects: [{{project_id: '{a}'}}, {{project_id: '{a}'}}]\n",
            "projects[1].project_id: duplicate of projects[0]: each project is listed once",
        ),
        (
            "projects: [{project_id: nope}]\n",
            "projects[0].project_id: must be 32 lowercase hexadecimal characters",
        ),
        (
            f"projects: [{{project_id: '{a}'}}]\nfreshness_minutes: 0\n",
            "freshness_minutes: must be a positive number of minutes",
        ),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError) as raised:
            load_layout_file(config)
        assert str(raised.value) == f"{config}: {problem}"


def test_a_freshness_under_a_minute_is_dagsters_minute(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "drs.yaml", simulator, freshness_minutes=0.5)
    monkeypatch.setenv("DRS_CONFIG", str(config))
    node = defs().resolve_asset_graph().get(ASYNC_JOBS)
    assert node.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=1))


def test_without_a_configuration_the_partitions_are_the_simulators_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drs_pipeline.config import embedded_simulator_settings

    monkeypatch.delenv("DRS_CONFIG", raising=False)
    monkeypatch.setenv("DRS_HOME", str(tmp_path))
    node = defs().resolve_asset_graph().get(ASYNC_JOBS)
    assert node.partitions_def == dg.StaticPartitionsDefinition(
        [project.project_id for project in embedded_simulator_settings().projects]
    )


def test_the_schedule_requests_every_project_in_one_run(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "drs.yaml", simulator)
    monkeypatch.setenv("DRS_CONFIG", str(config))
    schedule = defs().resolve_schedule_def("drs_pipeline_schedule")
    with dg.instance_for_test() as instance:
        tick = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    (request,) = tick.run_requests or []
    assert request.partition_key is None
    assert request.partition_key_range == dg.PartitionKeyRange(
        simulator.project_ids[0], simulator.project_ids[-1]
    )


def test_a_run_of_every_partition_syncs_every_project_in_one_merge_batch(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    definitions = pipeline(simulator, tmp_path, database)

    result = execute_pipeline(definitions, instance=instance, raise_on_error=False)

    assert result.success
    projects = simulator.project_ids
    # One sync: every project's row carries the same sync_id.
    ((syncs, rows),) = query(
        database, "SELECT count(DISTINCT sync_id), count(*) FROM drs.sync_runs"
    )
    assert (syncs, rows) == (1, len(projects))
    assert query(
        database, "SELECT project_id, outcome, jobs_seen FROM drs.sync_runs ORDER BY ALL"
    ) == sorted((project_id, "ok", 2) for project_id in projects)
    assert partitions_materialized(result) == {
        (table, project_id) for table in HISTORY for project_id in projects
    }
    assert MART in {event.asset_key for event in result.get_asset_materialization_events()}
    (run,) = instance.get_runs()
    assert run.tags["dagster/asset_partition_range_start"] == projects[0]
    assert run.tags["dagster/asset_partition_range_end"] == projects[-1]
    for table in HISTORY:
        assert statuses(instance, definitions, dg.AssetKey(["drs", table])) == dict.fromkeys(
            projects, dg.AssetPartitionStatus.MATERIALIZED
        )


def test_a_run_of_one_partition_syncs_that_project_alone_and_rebuilds_the_marts(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    definitions = pipeline(simulator, tmp_path, database)
    chosen = simulator.project_ids[2]

    # As the UI launches it: the job, one partition.
    result = definitions.resolve_job_def("drs_pipeline_job").execute_in_process(
        instance=instance, raise_on_error=False, partition_key=chosen
    )

    assert result.success
    assert requested_projects(simulator) == {chosen}
    assert query(database, "SELECT project_id, outcome FROM drs.sync_runs") == [(chosen, "ok")]
    assert query(database, "SELECT DISTINCT project_id FROM drs.async_jobs") == [(chosen,)]
    assert partitions_materialized(result) == {(table, chosen) for table in HISTORY}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["every_project_synced_ok"].passed
    assert checks["every_project_synced_ok"].description == "1 projects ok"
    # The marts rebuild from the whole history: every configured project, one synced.
    assert query(
        database, "SELECT project_id, last_outcome FROM drs.project_status ORDER BY ALL"
    ) == sorted((p, "ok" if p == chosen else None) for p in simulator.project_ids)
    assert statuses(instance, definitions, SYNC_RUNS) == {
        p: dg.AssetPartitionStatus.MATERIALIZED if p == chosen else None
        for p in simulator.project_ids
    }


def test_a_failing_project_shows_as_its_partition_failed_while_the_others_materialize(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    definitions = pipeline(simulator, tmp_path, database)
    projects = simulator.project_ids
    refused = projects[1]
    # The API refuses it once, as DRS a project ID it does not know.
    simulator.faults.script(ScriptedFault(status=403, body=REFUSAL, project_id=refused))

    result = execute_pipeline(definitions, instance=instance, raise_on_error=False)

    # The run fails, by the one check that names the project; everything else ran.
    assert not result.success
    assert result.dagster_run.status == dg.DagsterRunStatus.FAILURE
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "drs__rejected_records_every_project_synced_ok"
    verdict = {e.check_name: e for e in result.get_asset_check_evaluations()}[
        "every_project_synced_ok"
    ]
    assert not verdict.passed
    assert (verdict.description or "").startswith(
        f"{refused}: failed: project {refused}, page offset 0: HTTP 403 DRS.M00261: "
    )
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert {MART, dg.AssetKey(["drs", "published_snapshot"])} <= materialized
    # drs/sync_runs: its partition failed, the others materialized.
    others = [p for p in projects if p != refused]
    assert ("sync_runs", refused) not in partitions_materialized(result)
    assert statuses(instance, definitions, SYNC_RUNS) == {
        p: dg.AssetPartitionStatus.FAILED if p == refused else dg.AssetPartitionStatus.MATERIALIZED
        for p in projects
    }
    # The history's other tables materialize every selected project (the marts need
    # them), each partition saying how its project's sync went.
    outcomes = {
        event.partition: event.materialization.metadata["outcome"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key == ASYNC_JOBS
    }
    assert outcomes == {p: "failed" if p == refused else "ok" for p in projects}
    assert query(
        database, "SELECT project_id FROM drs.project_status WHERE stale ORDER BY ALL"
    ) == [(refused,)]
    assert sorted(query(database, "SELECT DISTINCT project_id FROM drs.async_jobs")) == sorted(
        (p,) for p in others
    )

    # Once the API answers again, the project is synced alone and its partition recovers.
    simulator.app.stats.log.clear()
    retry = definitions.resolve_job_def("drs_pipeline_job").execute_in_process(
        instance=instance, raise_on_error=False, partition_key=refused
    )
    assert retry.success
    assert requested_projects(simulator) == {refused}
    assert statuses(instance, definitions, SYNC_RUNS) == dict.fromkeys(
        projects, dg.AssetPartitionStatus.MATERIALIZED
    )


def test_a_partition_no_longer_configured_fails_the_run_saying_to_reload(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    definitions = pipeline(simulator, tmp_path, database)
    gone = simulator.project_ids[3]
    # The file loses a project after the code location loaded it.
    write_config(tmp_path / "drs.yaml", simulator, simulator.project_ids[:3])

    result = execute_pipeline(definitions, instance=instance, raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "drs_sync"
    data = failure.step_failure_data.user_failure_data
    assert data is not None
    assert data.description == (
        f"configuration error: {tmp_path / 'drs.yaml'}: projects: {gone} not configured any "
        "more; reload the code location so that its partitions are the configured projects"
    )
    assert requested_projects(simulator) == set()
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
