"""The Dagster side: definitions load, and real materializations of the ingest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from drs_pipeline.definitions import defs
from drs_pipeline.defs.ingest.assets import drs_sync
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource

from .conftest import Simulator, query, write_config

REPO = Path(__file__).resolve().parent.parent
HISTORY_KEYS = {
    dg.AssetKey(["drs", t])
    for t in ("async_jobs", "async_job_history", "sync_runs", "rejected_records")
}


def materialize(config: Path, database: Path) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [drs_sync],
            instance=instance,
            resources={
                "drs_api": DrsApiResource(config_path=str(config)),
                "history_db": HistoryDatabaseResource(path=str(database), lock_timeout_s=2),
            },
            raise_on_error=False,
        )


def test_definitions_hold_the_ingest_assets_and_resources() -> None:
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) >= HISTORY_KEYS
    for key in HISTORY_KEYS:
        assert graph.get(key).group_name == "ingest"
    assert {"drs_api", "history_db"} <= set(definitions.resources or {})


def test_dg_check_defs_passes(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop("DRS_CONFIG", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_materialization_lands_the_history_with_metadata(
    simulator: Simulator, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = simulator.project_ids[0]
    for i in range(7):
        simulator.world.add_job(project_id, create_time=simulator.clock.now() - 10 + i)
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    config = write_config(tmp_path / "drs.yaml", simulator, [project_id], page_size=3)

    result = materialize(config, database)

    assert result.success
    events = {
        e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    assert set(events) == HISTORY_KEYS
    jobs = events[dg.AssetKey(["drs", "async_jobs"])]
    assert jobs["dagster/row_count"].value == 7
    assert "ASYNC_JOB_VALIDATING" in jobs["preview"].value
    runs = events[dg.AssetKey(["drs", "sync_runs"])]
    assert project_id in runs["projects"].value and "| ok " in runs["projects"].value
    assert query(database, "SELECT count(*) FROM drs.async_jobs") == [(7,)]


def test_a_failed_project_fails_the_step_after_landing_the_others(
    simulator: Simulator, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = simulator.project_ids[0]
    simulator.world.add_job(good)
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    config = write_config(tmp_path / "drs.yaml", simulator, [good, "e" * 32])

    result = materialize(config, database)

    assert not result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == HISTORY_KEYS
    (failure,) = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "e" * 32 in description and "DRS.M00261" in description and "failed" in description
    assert query(database, "SELECT count(*) FROM drs.async_jobs") == [(1,)]


def test_configuration_error_fails_the_run_without_retry(tmp_path: Path, database: Path) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text("projects: [{project_id: nope, region: cn-south-2}]\n")

    result = materialize(config, database)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "configuration error" in description and "projects[0].project_id" in description
    assert not database.exists()
