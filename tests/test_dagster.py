"""The Dagster side: definitions load, and real materializations of the whole job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from drs_pipeline.definitions import definitions_with_resources, defs, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.defs.schedules import SCHEDULE_DESCRIPTION
from drs_pipeline.warehouse import catalog

from .helpers import Simulator, query, write_config

REPO = Path(__file__).resolve().parent.parent
HISTORY_KEYS = {
    dg.AssetKey(["drs", t])
    for t in ("async_jobs", "async_job_history", "sync_runs", "rejected_records")
}
MART_KEYS = {
    dg.AssetKey(["drs", t])
    for t in (
        "project_status",
        "status_counts",
        "status_counts_by_project",
        "job_clock",
        "status_transitions",
        "job_steps",
        "duration_samples",
        "durations_in_progress",
        "job_durations",
        "job_durations_by_project",
        "stuck_jobs",
        "published_snapshot",
    )
}
ALERT_KEYS = {dg.AssetKey(["drs", t]) for t in ("alerts", "alert_deliveries", "alert_baselines")}
CHECKS = {
    ("async_job_history", "history_invariants"),
    ("rejected_records", "every_project_synced_ok"),
    ("rejected_records", "no_rejected_records"),
    ("async_jobs", "history_is_fresh"),
    ("stuck_jobs", "no_stuck_jobs"),
    ("duration_samples", "durations_are_bounded"),
}


def run_job(config: Path, database: Path) -> dg.ExecuteInProcessResult:
    """The scheduled job, in process, with resources pointed at this test's files."""
    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(config_path=str(config)),
            "history_db": HistoryDatabaseResource(path=str(database), lock_timeout_s=2),
        }
    )
    with dg.instance_for_test() as instance:
        return execute_pipeline(definitions, instance=instance, raise_on_error=False)


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def test_definitions_hold_assets_checks_job_and_running_schedule() -> None:
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == HISTORY_KEYS | MART_KEYS | ALERT_KEYS
    assert {(k.asset_key.path[-1], k.name) for k in graph.asset_check_keys} == CHECKS
    assert {"drs_api", "history_db"} <= set(definitions.resources or {})
    schedule = definitions.resolve_schedule_def("drs_pipeline_schedule")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "drs_pipeline_job"


def test_table_assets_show_their_name_columns_owners_and_tags_in_the_catalog() -> None:
    graph = defs().resolve_asset_graph()
    for group, tables, kinds in [
        ("ingest", catalog.HISTORY, {"duckdb", "table"}),
        ("marts", catalog.MARTS, {"duckdb", "sql", "table"}),
        ("alerts", catalog.ALERTS_GROUP, {"duckdb", "table"}),
    ]:
        for table in tables:
            node = graph.get(dg.AssetKey(["drs", table.name]))
            assert node.group_name == group
            assert node.description == table.description
            assert node.metadata["dagster/table_name"] == f"drs.{table.name}"
            assert node.metadata["dagster/column_schema"] == dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        name=column.name,
                        type=column.type,
                        description=column.description,
                        constraints=dg.TableColumnConstraints(nullable=column.nullable),
                    )
                    for column in table.columns
                ]
            )
            assert node.owners == ["team:drs-pipeline"]
            assert node.tags == {
                "domain": "drs",
                "layer": group,
                **{f"dagster/kind/{kind}": "" for kind in kinds},
            }
    jobs = graph.get(dg.AssetKey(["drs", "async_jobs"]))
    assert jobs.description == (
        "Current state of every batch async job ever seen, one row per project and job."
    )
    (gone_at,) = [c for c in jobs.metadata["dagster/column_schema"].columns if c.name == "gone_at"]
    assert gone_at.type == "TIMESTAMP WITH TIME ZONE"
    assert gone_at.constraints.nullable
    runs = graph.get(dg.AssetKey(["drs", "sync_runs"])).metadata["dagster/column_schema"]
    assert [c.name for c in runs.columns][-3:] == [
        "rejected_records",
        "requests",
        "server_clock_offset_s",
    ]
    snapshot = graph.get(dg.AssetKey(["drs", "published_snapshot"]))
    assert snapshot.owners == ["team:drs-pipeline"]
    assert snapshot.tags == {"domain": "drs", "layer": "publish", "dagster/kind/duckdb": ""}


def test_job_and_schedule_say_what_they_do() -> None:
    definitions = defs()
    assert definitions.resolve_job_def("drs_pipeline_job").description == (
        "Sync the selected DRS projects (a partition each; the schedule selects them all), "
        "check the history, rebuild the marts."
    )
    assert definitions.resolve_schedule_def("drs_pipeline_schedule").description == (
        "Runs drs_pipeline_job on the cron of drs.yaml's `schedule` (UTC), every project in "
        "one run."
    )


def test_schedule_cron_comes_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text("schedule: '*/2 * * * *'\nprojects: []\n")  # rest checked per run
    monkeypatch.setenv("DRS_CONFIG", str(config))
    assert defs().resolve_schedule_def("drs_pipeline_schedule").cron_schedule == "*/2 * * * *"


def test_schedule_evaluation_targets_the_job() -> None:
    schedule = defs().resolve_schedule_def("drs_pipeline_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        data = schedule.evaluate_tick(context)
    (request,) = data.run_requests or []
    assert request.job_name in (None, "drs_pipeline_job")


def dg_check_defs(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``dg check defs`` in the checkout, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_dg_check_defs_passes(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop("DRS_CONFIG", None)
    done = dg_check_defs(env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_job_lands_history_and_marts_with_metadata_and_checks(
    simulator: Simulator, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = simulator.project_ids[0]
    for i in range(7):
        simulator.world.add_job(project_id, create_time=simulator.clock.now() - 10 + i)
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    config = write_config(tmp_path / "drs.yaml", simulator, [project_id], page_size=3)

    result = run_job(config, database)

    assert result.success
    assert materialized(result) == HISTORY_KEYS | MART_KEYS | ALERT_KEYS
    events = {
        e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    jobs = events[dg.AssetKey(["drs", "async_jobs"])]
    assert jobs["dagster/row_count"].value == 7
    assert "ASYNC_JOB_VALIDATING" in jobs["preview"].value
    # Each table's materialization is the project's partition, with its part of the sync.
    assert {(e.asset_key, e.partition) for e in result.get_asset_materialization_events()} >= {
        (key, project_id) for key in HISTORY_KEYS
    }
    runs = events[dg.AssetKey(["drs", "sync_runs"])]
    assert (runs["outcome"].value, runs["error"].value, runs["jobs_seen"].value) == ("ok", "", 7)
    assert runs["dagster/row_count"].value == 1
    assert events[dg.AssetKey(["drs", "status_counts"])]["dagster/row_count"].value == 1
    # The database each table lives in, as a path value (the mart too); the copy's path.
    for key in (dg.AssetKey(["drs", "async_jobs"]), dg.AssetKey(["drs", "stuck_jobs"])):
        assert events[key]["database"] == dg.MetadataValue.path(str(database.resolve()))
    snapshot = events[dg.AssetKey(["drs", "published_snapshot"])]
    assert snapshot["path"] == dg.MetadataValue.path(
        str(database.resolve().with_name("history_published.duckdb"))
    )
    assert snapshot["database"] == dg.MetadataValue.path(str(database.resolve()))
    status_preview = events[dg.AssetKey(["drs", "status_counts"])]["preview"].value
    assert status_preview.splitlines()[0].split() == [
        "|",
        "domain_name",
        "|",
        "user_name",
        "|",
        "status",
        "|",
        "jobs",
        "|",
        "as_of",
        "|",
        "stale",
        "|",
    ]
    checks = check_results(result)
    assert {name for _, name in CHECKS} == set(checks)
    assert all(c.passed for c in checks.values())
    assert query(database, "SELECT sum(jobs) FROM drs.status_counts") == [(7,)]
    # The marts know the configured projects from the run's settings.
    assert query(
        database,
        "SELECT project_id, region, configured, last_outcome, stale FROM drs.project_status",
    ) == [(project_id, "cn-south-2", True, "ok", False)]


def test_a_failed_project_fails_the_run_but_the_rest_lands_in_history_and_marts(
    simulator: Simulator, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = simulator.project_ids[0]
    simulator.world.add_job(good)
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    config = write_config(tmp_path / "drs.yaml", simulator, [good, "e" * 32])

    result = run_job(config, database)

    assert not result.success
    assert materialized(result) == HISTORY_KEYS | MART_KEYS | ALERT_KEYS
    verdict = check_results(result)["every_project_synced_ok"]
    assert not verdict.passed
    assert "e" * 32 in (verdict.description or "") and "DRS.M00261" in (verdict.description or "")
    assert "e" * 32 in verdict.metadata["not_ok"].value
    (failure,) = result.get_step_failure_events()
    assert "every_project_synced_ok" in failure.step_key
    assert query(database, "SELECT sum(jobs) FROM drs.status_counts") == [(1,)]
    # Never synced ok: stale from the first run.
    assert query(
        database, "SELECT project_id, configured, last_outcome, stale FROM drs.project_status"
    ) == sorted([(good, True, "ok", False), ("e" * 32, True, "failed", True)])


def test_configuration_error_fails_the_run_without_retry(tmp_path: Path, database: Path) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text("projects: [{project_id: nope, region: cn-south-2}]\n")

    result = run_job(config, database)

    assert not result.success
    failures = result.get_step_failure_events()
    description = failures[0].step_failure_data.user_failure_data.description
    assert "configuration error" in description and "projects[0].project_id" in description
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert not database.exists()


# -- a broken drs.yaml: the code location loads, every run fails with the error -------------

BROKEN = {
    "bad_yaml": ("projects: [unclosed\n", "(file): not valid YAML"),
    "unknown_key": (
        "projects: [{project_id: '" + "a" * 32 + "', region: cn-south-2}]\nzone: a\n",
        "zone: unknown key",
    ),
    "bad_cron": (
        "projects: [{project_id: '" + "a" * 32 + "', region: cn-south-2}]\n"
        "schedule: '61 * * * *'\n",
        "schedule: must be a cron expression of five fields, like '*/5 * * * *': "
        "the minute field '61' is not within 0-59",
    ),
    "alias_bomb": (
        "projects: [{project_id: '" + "a" * 32 + "', region: cn-south-2}]\n"
        "schedule: [&a x, &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
        + ", ".join(
            f"&{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("bcdefgh", "cdefghi", strict=True)
        )
        + "]\n",
        "schedule: expands to more than 100000 values through YAML aliases",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_configuration_keeps_the_code_location_and_fails_each_run(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, problem = BROKEN[kind]
    config = tmp_path / "drs.yaml"
    config.write_text(text)
    database = tmp_path / "history.duckdb"
    monkeypatch.setenv("DRS_CONFIG", str(config))
    monkeypatch.setenv("DRS_DUCKDB_PATH", str(database))
    monkeypatch.setenv("DRS_AUTH_TOKEN", "t0k3n-never-shown")

    # The code location as the daemon and the webserver load it.
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == HISTORY_KEYS | MART_KEYS | ALERT_KEYS
    schedule = definitions.resolve_schedule_def("drs_pipeline_schedule")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    if kind == "unknown_key":
        # Only the schedule key is read when definitions load (no credentials there).
        assert schedule.description == SCHEDULE_DESCRIPTION
    else:
        assert (schedule.description or "").startswith(f"configuration error: {config}: {problem}")
    # Partitioned when the projects can be read; else not, saying why.
    node = graph.get(dg.AssetKey(["drs", "async_jobs"]))
    if kind in ("bad_yaml", "alias_bomb"):
        assert node.partitions_def is None
        assert f" Not partitioned by project: configuration error: {config}: {problem}" in (
            node.description or ""
        )
    else:
        assert node.partitions_def == dg.StaticPartitionsDefinition(["a" * 32])
    with dg.instance_for_test() as instance:
        tick = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
        (request,) = tick.run_requests or []

        # Each run the schedule requests fails at once, naming the file and the key, and
        # is not retried.
        result = definitions.resolve_job_def("drs_pipeline_job").execute_in_process(
            instance=instance, raise_on_error=False, tags=request.tags
        )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "drs_sync"
    data = failure.step_failure_data
    assert data.user_failure_data is not None
    description = data.user_failure_data.description or ""
    assert description.startswith(f"configuration error: {config}: {problem}")
    assert len(description) < 400
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert not database.exists()


def test_dg_check_defs_passes_with_a_broken_configuration(tmp_path: Path) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text(BROKEN["bad_yaml"][0])
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DRS_CONFIG": str(config)}
    done = dg_check_defs(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_cron_dagster_refuses_falls_back_to_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text("schedule: '0 0 30 2 *'\nprojects: []\n")  # every field valid; never fires
    monkeypatch.setenv("DRS_CONFIG", str(config))
    schedule = defs().resolve_schedule_def("drs_pipeline_schedule")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert (schedule.description or "").startswith("the schedule of drs.yaml: ")
    assert "0 0 30 2 *" in (schedule.description or "")


def test_every_module_under_defs_is_part_of_the_code_location() -> None:
    """definitions.py lists its modules (the folder loader needs a checkout): one left
    out of the list would silently drop its assets."""
    import pkgutil

    import drs_pipeline.defs
    from drs_pipeline import definitions

    found = {
        module.name
        for module in pkgutil.walk_packages(drs_pipeline.defs.__path__, prefix="drs_pipeline.defs.")
        if not module.ispkg
    }
    listed = {module.__name__ for module in definitions.DEFS_MODULES}
    wired = {
        "drs_pipeline.defs.ingest.partitions",
        "drs_pipeline.defs.resources",
        "drs_pipeline.defs.schedules",
        "drs_pipeline.defs.specs",
    }
    assert found == listed | wired
