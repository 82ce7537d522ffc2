"""The command line, run as a user runs it: a subprocess, real HTTP, a real file."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

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
    assert done.returncode == 2 and "holds the history of real projects" in done.stderr


def test_the_simulator_command_serves_aksk_and_iam_password_clients(
    tmp_path: Path, database: Path
) -> None:
    """``drs-pipeline simulator`` as a tool for trying real authentication locally: its
    gateway checks signatures and its IAM issues tokens, to the secrets its environment
    holds (and it prints which variables, never their values)."""
    secrets_env = {
        "SIM_AK": "AK" + secrets.token_hex(8).upper(),
        "SIM_SK": secrets.token_hex(20),
        "SIM_PASSWORD": secrets.token_urlsafe(16),
    }
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server_env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    command = [CLI, "simulator", "--port", str(port), "--seed", "7"]
    command += ["--ak-env", "SIM_AK", "--sk-env", "SIM_SK"]
    command += ["--iam-user", "acme/reader", "--iam-password-env", "SIM_PASSWORD"]
    server = subprocess.Popen(
        command,
        env={**server_env, **secrets_env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        # Read up to the line saying what it accepts, which comes last before serving.
        banner: list[str] = []
        while not banner or not banner[-1].startswith("accepting:"):
            line = server.stdout.readline()
            assert line, "the simulator exited early: " + "".join(banner)
            banner.append(line)
        assert banner[0].startswith(f"DRS simulator on {url}"), banner
        signed, by_password = (line.split()[0] for line in banner[1:3])
        _wait_until_answering(url)
        config = tmp_path / "drs.yaml"
        config.write_text(
            "projects:\n"
            f"  - {{project_id: '{signed}', region: cn-south-2, endpoint: '{url}'}}\n"
            f"  - {{project_id: '{by_password}', region: cn-south-2, endpoint: '{url}',\n"
            f"     auth: {{method: password, iam_endpoint: '{url}', domain_name: acme,\n"
            "            user_name: reader, password_env: SIM_PASSWORD}}\n"
            "auth: {method: aksk, ak_env: SIM_AK, sk_env: SIM_SK}\n"
        )
        done = run(
            ["sync", "--config", str(config), "--database", str(database)], secrets_env, tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert query(
            database,
            "SELECT count(DISTINCT project_id), bool_and(outcome = 'ok') FROM drs.sync_runs",
        ) == [(2, True)]
        assert query(database, "SELECT count(*) > 0 FROM drs.async_jobs") == [(True,)]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    printed = "".join(banner) + output
    assert "SIM_AK/SIM_SK" in printed and "acme/reader" in printed
    assert not [value for value in secrets_env.values() if value in printed]


def test_the_simulator_command_names_what_is_missing(tmp_path: Path) -> None:
    done = run(["simulator", "--ak-env", "SIM_AK"], {}, tmp_path)
    assert done.returncode == 2 and "--ak-env and --sk-env go together" in done.stderr
    done = run(["simulator", "--iam-user", "reader", "--iam-password-env", "PW"], {}, tmp_path)
    assert done.returncode == 2 and "--iam-user must be DOMAIN/USER" in done.stderr
    done = run(["simulator"], {}, tmp_path)
    assert done.returncode == 2 and "set DRS_AUTH_TOKEN" in done.stderr


def _wait_until_answering(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
