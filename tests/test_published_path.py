"""DRS_PUBLISHED_PATH is where every writer publishes the readers' copy, whatever
database it writes: readers that use the variable never read a stale copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource

from .helpers import Simulator, query, write_config

CLI = str(Path(sys.executable).parent / "drs-pipeline")


def test_the_resource_resolves_the_published_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "h.duckdb"
    monkeypatch.delenv("DRS_PUBLISHED_PATH", raising=False)
    resource = HistoryDatabaseResource(path=str(database))
    assert resource.resolved_published_path() == tmp_path / "h_published.duckdb"
    monkeypatch.setenv("DRS_PUBLISHED_PATH", str(tmp_path / "readers" / "copy.duckdb"))
    assert resource.resolved_published_path() == tmp_path / "readers" / "copy.duckdb"
    explicit = HistoryDatabaseResource(path=str(database), published_path=str(tmp_path / "x.db"))
    assert explicit.resolved_published_path() == tmp_path / "x.db"


def test_a_run_into_an_explicit_database_publishes_to_drs_published_path(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator.world.add_job(simulator.project_ids[0])
    config = write_config(tmp_path / "drs.yaml", simulator, simulator.project_ids[:1])
    database, published = tmp_path / "h.duckdb", tmp_path / "readers" / "copy.duckdb"
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    monkeypatch.setenv("DRS_PUBLISHED_PATH", str(published))
    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(config_path=str(config)),
            "history_db": HistoryDatabaseResource(path=str(database), lock_timeout_s=2),
        }
    )
    with dg.instance_for_test() as instance:
        result = execute_pipeline(definitions, instance=instance, raise_on_error=False)
    assert result.success
    (sync_id,) = query(database, "SELECT DISTINCT sync_id FROM drs.sync_runs")
    assert query(published, "SELECT sync_id FROM drs.publication") == [sync_id]
    assert not (tmp_path / "h_published.duckdb").exists()


def test_sync_with_database_publishes_where_readers_look(
    simulator: Simulator, tmp_path: Path
) -> None:
    simulator.world.add_job(simulator.project_ids[0])
    config = write_config(tmp_path / "drs.yaml", simulator, simulator.project_ids[:1])
    database, published = tmp_path / "h.duckdb", tmp_path / "copy.duckdb"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    env = {
        **clean,
        "DRS_AUTH_TOKEN": simulator.token,
        "DRS_CONFIG": str(config),
        "DRS_PUBLISHED_PATH": str(published),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240
        )

    for _ in range(2):
        done = cli("sync", "--database", str(database))
        assert done.returncode == 0, done.stderr
    latest = query(database, "SELECT max(sync_id) FROM drs.sync_runs")[0][0]
    # A reader that knows only DRS_PUBLISHED_PATH reads the latest sync.
    done = cli("sql", "SELECT sync_id FROM drs.publication", "--csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["sync_id", latest]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "h_published.duckdb").exists()
