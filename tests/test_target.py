"""The embedded simulator never lands in real history, nor real projects in a demo's.

Every writer goes through the guard: ``run_sync``, a Dagster run, ``drs-pipeline
sync`` and ``demo``, and the publication of the readers' copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from drs_pipeline.config import ConfigError, Settings, embedded_simulator_settings
from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.publish import publish
from drs_pipeline.warehouse.store import open_warehouse
from drs_pipeline.warehouse.target import (
    CONFIGURED,
    EMBEDDED,
    check_target,
    claim_target,
    embedded_simulator_project_ids,
)

from .helpers import Simulator, query, settings_for, sync, write_config

CLI = str(Path(sys.executable).parent / "drs-pipeline")


def real_history_refusal(database: Path, home: Path) -> str:
    return (
        f"{database}: (database): holds the history of real projects; the embedded simulator "
        "(what `demo` syncs, and `sync` and the schedule when no drs.yaml is found) is never "
        f"synced into it: to sync the real projects set DRS_CONFIG or write {home}/drs.yaml; "
        "for the simulator, point DRS_DUCKDB_PATH (or --database) at another file"
    )


def demo_history_refusal(database: Path, config: Path) -> str:
    return (
        f"{database}: (database): holds the embedded simulator's demo history; the real "
        f"projects of {config} are never synced into it: point DRS_DUCKDB_PATH (or --database) "
        "at another file for them, or delete this demo database"
    )


def recorded(database: Path) -> list[tuple]:
    return query(database, "SELECT value FROM drs.database_info WHERE key = 'projects_from'")


def sync_count(database: Path) -> list[tuple]:
    return query(database, "SELECT count(*) FROM drs.sync_runs")


@pytest.fixture
def real_history(simulator: Simulator, tmp_path: Path) -> Path:
    """A database holding one real sync (the simulator over HTTP, from a drs.yaml)."""
    simulator.world.add_job(simulator.project_ids[0])
    database = tmp_path / "real.duckdb"
    sync(simulator, settings_for(simulator, tmp_path, simulator.project_ids[:1]), database)
    return database


@pytest.fixture
def demo_history(tmp_path: Path) -> Path:
    """A database holding one sync of the embedded simulator."""
    database = tmp_path / "demo.duckdb"
    run_sync(embedded_simulator_settings(), database)
    return database


# -- run_sync: the one place every writer goes through ----------------------------------


def test_a_new_database_records_what_it_holds(
    real_history: Path, demo_history: Path, tmp_path: Path
) -> None:
    assert recorded(real_history) == [(CONFIGURED,)]
    assert recorded(demo_history) == [(EMBEDDED,)]


def test_run_sync_refuses_the_embedded_simulator_into_real_history(
    real_history: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DRS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    before = sync_count(real_history)
    with pytest.raises(ConfigError) as caught:
        run_sync(embedded_simulator_settings(), real_history)
    assert str(caught.value) == real_history_refusal(real_history, tmp_path)
    assert sync_count(real_history) == before


def test_run_sync_refuses_real_projects_into_a_demo_history(
    simulator: Simulator, demo_history: Path, tmp_path: Path
) -> None:
    settings = settings_for(simulator, tmp_path)
    before = sync_count(demo_history)
    with pytest.raises(ConfigError) as caught:
        sync(simulator, settings, demo_history)
    assert str(caught.value) == demo_history_refusal(demo_history, tmp_path / "drs.yaml")
    assert simulator.app.stats.requests == 0, "refused before any request"
    assert sync_count(demo_history) == before


def legacy_database(path: Path, project_ids: list[str]) -> Path:
    """A database of before drs.database_info: only drs.sync_runs says what it holds."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA drs; CREATE TABLE drs.sync_runs (project_id VARCHAR)")
        for project_id in project_ids:
            con.execute("INSERT INTO drs.sync_runs VALUES (?)", [project_id])
    return path


def test_an_older_database_is_judged_by_its_projects(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    simulated = sorted(embedded_simulator_project_ids())
    assert len(simulated) == 4

    old_demo = legacy_database(tmp_path / "old_demo.duckdb", simulated)
    with pytest.raises(ConfigError, match="holds the embedded simulator's demo history"):
        check_target(old_demo, settings_for(simulator, tmp_path))
    claim(old_demo, embedded_simulator_settings())
    assert recorded(old_demo) == [(EMBEDDED,)]

    # One real project among the simulator's is enough to make it real history.
    old_real = legacy_database(tmp_path / "old_real.duckdb", [*simulated, "a" * 32])
    with pytest.raises(ConfigError, match="holds the history of real projects"):
        check_target(old_real, embedded_simulator_settings())
    with pytest.raises(ConfigError, match="holds the history of real projects"):
        claim(old_real, embedded_simulator_settings())
    claim(old_real, settings_for(simulator, tmp_path))
    assert recorded(old_real) == [(CONFIGURED,)]

    # A database that never synced anything takes whichever comes first.
    empty = legacy_database(tmp_path / "empty.duckdb", [])
    check_target(empty, embedded_simulator_settings())
    claim(empty, embedded_simulator_settings())
    assert recorded(empty) == [(EMBEDDED,)]


def claim(database: Path, settings: Settings) -> None:
    """What a sync does on its own connection before its first write."""
    with open_warehouse(database) as warehouse:
        claim_target(warehouse.connection, database, settings)


# -- Dagster: a failed run, not retried, with the message -------------------------------


def test_a_dagster_run_of_the_simulator_into_real_history_fails_unretried(
    real_history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    before = sync_count(real_history)
    definitions = definitions_with_resources(
        {
            # What the schedule runs when no drs.yaml is found.
            "drs_api": DrsApiResource(embedded_simulator=True),
            "history_db": HistoryDatabaseResource(path=str(real_history), lock_timeout_s=2),
        }
    )
    with dg.instance_for_test() as instance:
        result = execute_pipeline(definitions, instance=instance, raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "drs_sync"
    data = failure.step_failure_data
    assert data.user_failure_data is not None
    assert data.user_failure_data.description == (
        "configuration error: " + real_history_refusal(real_history, tmp_path)
    )
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert not result.get_asset_materialization_events()
    assert sync_count(real_history) == before


# -- the command line: exit 2, one line, no traceback -----------------------------------


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    return subprocess.run(
        [CLI, *args], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=240
    )


def assert_refused(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"configuration error: {message}"]
    assert "Traceback" not in done.stdout + done.stderr


def test_sync_without_configuration_refuses_real_history(
    real_history: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no_config_here"
    empty.mkdir()
    before = sync_count(real_history)
    done = run(["sync"], {"DRS_DUCKDB_PATH": str(real_history)}, empty)
    assert_refused(done, real_history_refusal(real_history, empty))
    done = run(["sync", "--database", str(real_history)], {"DRS_HOME": str(empty)}, tmp_path)
    assert_refused(done, real_history_refusal(real_history, empty))
    assert sync_count(real_history) == before


def test_demo_refuses_real_history(real_history: Path, tmp_path: Path) -> None:
    before = sync_count(real_history)
    done = run(["demo", "--syncs", "1", "--database", str(real_history)], {}, tmp_path)
    assert_refused(done, real_history_refusal(real_history, tmp_path))
    assert sync_count(real_history) == before


def test_sync_refuses_real_projects_into_a_demo_history(
    simulator: Simulator, demo_history: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "drs.yaml", simulator)
    before = sync_count(demo_history)
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(demo_history)}
    done = run(["sync"], env, tmp_path)
    assert_refused(done, demo_history_refusal(demo_history, config))
    assert simulator.token not in done.stdout + done.stderr
    assert simulator.app.stats.requests == 0
    assert sync_count(demo_history) == before


# -- the readers' copy ------------------------------------------------------------------


def test_a_demo_never_replaces_the_published_copy_of_real_history(
    real_history: Path, tmp_path: Path
) -> None:
    published = tmp_path / "readers.duckdb"
    publish(real_history, published, published_at=datetime.now(UTC))
    copy_before = published.read_bytes()

    demo = tmp_path / "demo.duckdb"
    env = {"DRS_PUBLISHED_PATH": str(published)}
    done = run(["demo", "--syncs", "1", "--database", str(demo)], env, tmp_path)
    assert_refused(
        done,
        f"{published}: (published copy): is the readers' copy of the history of real "
        f"projects; {demo} holds that of the embedded simulator and would replace it: point "
        "DRS_PUBLISHED_PATH at another file (or unset it) when syncing demo.duckdb",
    )
    assert published.read_bytes() == copy_before

    # publish() itself refuses too, whoever calls it.
    run_sync(embedded_simulator_settings(), demo)
    with pytest.raises(ConfigError, match=r"\(published copy\): is the readers' copy"):
        publish(demo, published, published_at=datetime.now(UTC))
    assert published.read_bytes() == copy_before
