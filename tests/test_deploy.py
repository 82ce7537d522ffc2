"""The production deployment in deploy/: Dagster's storage in PostgreSQL, the
webserver and the daemon as systemd services (docs/deploy.md).

The slow test starts a real PostgreSQL server (Debian's binaries, a cluster made by
initdb in a temporary folder, run as an unprivileged user), runs ``dagster-daemon``
on deploy/dagster.yaml against it with a schedule due every minute, and reads the
run and its materializations back through a ``DagsterInstance`` on that server.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from psycopg2.extensions import encrypt_password

from .helpers import Simulator, environment_without_ours, query, stop_process, write_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
UNITS = {
    "drs-dagster-daemon.service": "dagster-daemon run",
    "drs-dagster-webserver.service": "dagster-webserver",
}
# What deploy/dagster.yaml reads from the environment, by field of `postgres_db`.
PG_ENV = {
    "username": "DAGSTER_PG_USERNAME",
    "password": "DAGSTER_PG_PASSWORD",
    "hostname": "DAGSTER_PG_HOST",
    "db_name": "DAGSTER_PG_DB",
    "port": "DAGSTER_PG_PORT",
}
# Debian puts the server's programs here, not on PATH; .ci/run looks in the same place.
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
UNPRIVILEGED_USER = "nobody"


def deploy_yaml() -> dict[str, object]:
    document = yaml.safe_load((DEPLOY / "dagster.yaml").read_text("utf-8"))
    assert isinstance(document, dict)
    return document


def test_deploy_dagster_yaml_keeps_what_dagster_home_enables_and_stores_in_postgres() -> None:
    local = yaml.safe_load((REPO / "dagster_home" / "dagster.yaml").read_text("utf-8"))
    deploy = deploy_yaml()
    # Everything the local home enables (run queue, pools, telemetry off, and what is
    # added there later) is in the production file too, with the same values.
    assert {key: deploy.get(key) for key in local} == local
    connection: dict[str, object] = {field: {"env": var} for field, var in PG_ENV.items()}
    # The driver dagster-postgres brings (SQLAlchemy 2.1 reads `postgresql` as psycopg 3).
    connection["scheme"] = "postgresql+psycopg2"
    assert deploy["storage"] == {"postgres": {"postgres_db": connection}}


def test_the_units_run_each_service_with_its_secrets_from_the_environment_file() -> None:
    example = (DEPLOY / "drs_pipeline.env.example").read_text("utf-8")
    assigned = dict(re.findall(r"^(\w+)=(.*)$", example, re.M))
    assert set(PG_ENV.values()) <= set(assigned)
    assert assigned["DAGSTER_PG_PASSWORD"] == ""  # a template: no secret committed
    for name, command in UNITS.items():
        service = unit_section(DEPLOY / name, "Service")
        (exec_start,) = service["ExecStart"]
        assert exec_start.startswith(f"/opt/drs_pipeline/.venv/bin/{command} "), name
        assert exec_start.endswith(" -w /opt/drs_pipeline/workspace.yaml"), name
        assert service["EnvironmentFile"] == ["/etc/drs_pipeline/drs_pipeline.env"]
        assert service["Restart"] == ["always"]
        assert service["User"] == ["drs-pipeline"]
        # Only paths in the units (world-readable): the same for both services, no secret.
        assert {e.split("=")[0] for e in service["Environment"]} == {
            "DAGSTER_HOME",
            "DRS_CONFIG",
            "DRS_DUCKDB_PATH",
        }, name
    # The units live here only: the docs link them instead of keeping a copy.
    for doc in (REPO / "docs").rglob("*.md"):
        assert "[Service]" not in doc.read_text("utf-8"), doc


def unit_section(path: Path, section: str) -> dict[str, list[str]]:
    """A systemd unit's section: each key with its values, in order (keys repeat)."""
    values: dict[str, list[str]] = {}
    current = None
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    for name in UNITS:
        # The units name the installed checkout; point them at this one's programs.
        text = (DEPLOY / name).read_text("utf-8").replace("/opt/drs_pipeline/.venv/bin", str(BIN))
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def find_postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs: Debian's newest
    ``/usr/lib/postgresql/<version>/bin``, else wherever ``initdb`` is on PATH."""
    debian = [
        initdb.parent
        for initdb in DEBIAN_POSTGRES.glob("*/bin/initdb")
        if initdb.parent.parent.name.isdigit()
    ]
    if debian:
        return max(debian, key=lambda folder: int(folder.parent.name))
    on_path = shutil.which("initdb")
    # Where it really is: a link on the PATH may stand for initdb alone, not pg_ctl.
    return Path(on_path).resolve().parent if on_path else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running server and the database and role made for Dagster on it."""

    port: int
    db_name: str
    username: str
    password: str

    def environment(self) -> dict[str, str]:
        """What the services' EnvironmentFile gives deploy/dagster.yaml."""
        values = {
            "hostname": "127.0.0.1",
            "port": str(self.port),
            "db_name": self.db_name,
            "username": self.username,
            "password": self.password,
        }
        return {PG_ENV[field]: value for field, value in values.items()}

    def connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=self.db_name,
            user=self.username,
            password=self.password,
        )


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster made by initdb in a temporary folder, run as an unprivileged
    user on a free loopback port, with a role and a database as docs/deploy.md makes
    them; stopped and removed afterwards, whatever happened."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's server programs are missing: .ci/run installs postgresql")
        pytest.skip("PostgreSQL's server programs are not installed (apt-get install postgresql)")
    # initdb and postgres refuse to run as root: run them as an unprivileged user.
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", UNPRIVILEGED_USER, "--"]
        owner = pwd.getpwnam(UNPRIVILEGED_USER)
    # Not under pytest's tmp_path: its folders are private to the user running pytest.
    base = Path(tempfile.mkdtemp(prefix="drs-postgres-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, log = base / "data", base / "postgres.log"
    superuser_password = secrets.token_urlsafe(24)
    password_file = base / "superuser-password"
    password_file.write_text(superuser_password + "\n")
    password_file.chmod(0o600)
    if owner is not None:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)

    def run(*command: str) -> None:
        done = subprocess.run(
            [*as_user, *command], capture_output=True, text=True, timeout=120, cwd=base
        )
        server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        assert done.returncode == 0, f"{command[0]}: {done.stdout}{done.stderr}{server_log}"

    port = free_port()
    started = False
    try:
        run(
            str(bin_dir / "initdb"),
            f"--pgdata={data}",
            "--username=postgres",
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        )
        password_file.unlink()
        started = True
        run(
            str(bin_dir / "pg_ctl"),
            f"--pgdata={data}",
            f"--log={log}",
            "--wait",
            "--timeout=60",
            # Loopback only; the socket in the temporary folder, not /var/run/postgresql.
            f"--options=-c listen_addresses=127.0.0.1 -p {port} -k {base}",
            "start",
        )
        server = PostgresServer(port, "dagster", "dagster", secrets.token_urlsafe(24))
        admin = psycopg2.connect(
            host="127.0.0.1",
            port=port,
            dbname="postgres",
            user="postgres",
            password=superuser_password,
        )
        try:
            admin.autocommit = True  # CREATE DATABASE runs outside a transaction
            with admin.cursor() as cursor:
                # As `createuser --pwprompt` does: the server sees only the SCRAM verifier.
                verifier = encrypt_password(server.password, server.username, admin)
                cursor.execute(f"CREATE ROLE {server.username} LOGIN PASSWORD %s", (verifier,))
                cursor.execute(f"CREATE DATABASE {server.db_name} OWNER {server.username}")
        finally:
            admin.close()
        yield server
    finally:
        if started:
            stop_postgres(as_user, bin_dir, data)
        shutil.rmtree(base, ignore_errors=True)


def stop_postgres(as_user: list[str], bin_dir: Path, data: Path) -> None:
    """``pg_ctl stop`` (fast: open connections are closed), else SIGKILL to the postmaster."""
    stop = [*as_user, str(bin_dir / "pg_ctl"), f"--pgdata={data}", "--mode=fast", "--wait"]
    try:
        done = subprocess.run([*stop, "stop"], capture_output=True, timeout=60)
        if done.returncode == 0:
            return
    except subprocess.TimeoutExpired:
        pass
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
JOBS = 5


@pytest.mark.slow
def test_the_daemon_runs_the_schedule_with_dagsters_storage_in_postgresql(
    postgres: PostgresServer,
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project_id = simulator.project_ids[0]
    for _ in range(JOBS):
        simulator.world.add_job(project_id)
    # Due at the next minute boundary, not in five minutes.
    # The watch off: its sensor would add runs of its own once the sync has published.
    config = write_config(
        tmp_path / "drs.yaml",
        simulator,
        [project_id],
        schedule="'* * * * *'",
        watch="{statuses: []}",
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    env = environment_without_ours(
        DAGSTER_HOME=str(home),
        DRS_CONFIG=str(config),
        DRS_AUTH_TOKEN=simulator.token,
        DRS_DUCKDB_PATH=str(database),
        **postgres.environment(),
    )
    daemon_log = tmp_path / "daemon.log"
    with daemon_log.open("wb") as log:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    # This process reads the same storage the way the services do: dagster.yaml and
    # the environment.
    for name, value in postgres.environment().items():
        monkeypatch.setenv(name, value)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # A cron tick (up to a minute away), the run's worker, one small sync.
            deadline = time.monotonic() + 170
            finished: list[dg.DagsterRun] = []
            while not finished:
                assert daemon.poll() is None, f"the daemon exited:\n{tail(daemon_log)}"
                assert time.monotonic() < deadline, f"no run finished:\n{tail(daemon_log)}"
                time.sleep(2)
                finished = instance.get_runs(filters=dg.RunsFilter(statuses=FINISHED))
            (run,) = finished
            assert run.status == dg.DagsterRunStatus.SUCCESS, tail(daemon_log)
            assert run.job_name == "drs_pipeline_job"
            assert run.tags.get("dagster/schedule_name") == "drs_pipeline_schedule"
            records = instance.fetch_materializations(
                dg.AssetKey(["drs", "async_jobs"]), limit=10
            ).records
            assert [record.run_id for record in records] == [run.run_id]
            materialization = records[0].asset_materialization
            assert materialization is not None
            assert materialization.metadata["dagster/row_count"].value == JOBS
    finally:
        stop_process(daemon)
    assert query(database, "SELECT count(*) FROM drs.async_jobs") == [(JOBS,)]
    # The run is in PostgreSQL, and Dagster kept no SQLite storage beside dagster.yaml.
    with postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT run_id, status FROM runs")
        assert cursor.fetchall() == [(run.run_id, "SUCCESS")]
    connection.close()
    assert not list(home.rglob("*.db")), sorted(home.rglob("*.db"))
    # The password reached the daemon through the environment only, and it said it nowhere.
    assert postgres.password not in daemon_log.read_text(errors="replace")


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
