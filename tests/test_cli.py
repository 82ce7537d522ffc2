"""The command line, run as a user runs it: a subprocess, real HTTP, a real file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from .conftest import Simulator, query, write_config

CLI = str(Path(sys.executable).parent / "drs-pipeline")


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    return subprocess.run(
        [CLI, *args], env={**full_env, **env}, cwd=cwd, capture_output=True, text=True, timeout=240
    )


def test_sync_exit_codes_and_report(simulator: Simulator, tmp_path: Path, database: Path) -> None:
    good = simulator.project_ids[0]
    for _ in range(3):
        simulator.world.add_job(good)
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}

    config = write_config(tmp_path / "ok.yaml", simulator, [good])
    done = run(["sync"], {**env, "DRS_CONFIG": str(config)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert good in done.stdout and " ok " in done.stdout

    config = write_config(tmp_path / "bad.yaml", simulator, [good, "d" * 32])
    done = run(["sync", "--config", str(config)], env, tmp_path)
    assert done.returncode == 1
    assert "d" * 32 in done.stderr and "DRS.M00261" in done.stderr and "X-Request-Id" in done.stderr
    assert query(database, "SELECT count(DISTINCT sync_id) FROM drs.sync_runs") == [(2,)]


def test_sync_configuration_error_exits_2_before_any_request(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    config = write_config(tmp_path / "drs.yaml", simulator)
    done = run(["sync"], {"DRS_DUCKDB_PATH": str(database)}, tmp_path)  # ./drs.yaml, no token
    assert done.returncode == 2
    assert "drs.yaml: auth.token_env: environment variable DRS_AUTH_TOKEN is not set" in done.stderr
    assert simulator.app.stats.requests == 0 and not database.exists()
    del config


def test_demo_runs_the_product_on_the_embedded_simulator(tmp_path: Path, database: Path) -> None:
    done = run(
        ["demo", "--syncs", "2", "--interval", "1"], {"DRS_DUCKDB_PATH": str(database)}, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "demo sync 2 of 2" in done.stdout
    assert "Jobs present now" in done.stdout and str(database) in done.stdout
    assert query(database, "SELECT count(DISTINCT sync_id), count(*) FROM drs.sync_runs") == [
        (2, 8)
    ]
    assert query(database, "SELECT count(*) > 500 FROM drs.async_jobs") == [(True,)]


def test_demo_refuses_a_database_holding_real_projects(tmp_path: Path, database: Path) -> None:
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA drs; CREATE TABLE drs.sync_runs (project_id VARCHAR)")
        con.execute("INSERT INTO drs.sync_runs VALUES ('" + "a" * 32 + "')")
    done = run(["demo", "--syncs", "1"], {"DRS_DUCKDB_PATH": str(database)}, tmp_path)
    assert done.returncode == 2 and "not the simulator's" in done.stderr
