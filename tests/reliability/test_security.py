"""Security: secrets never leak, TLS is always verified, configuration cannot steer a
request elsewhere, and nothing the API returns is ever SQL.

The tokens here are distinctive (``SECRET-TOKEN-<random>``), so finding one in any
output or file is a leak, not a coincidence. tests/test_auth.py does the same for
AK/SK and IAM passwords through the ingest asset alone; here it is the token
method through everything a run produces: the logs, the command line's output,
every Dagster event of the whole job, every table and every byte of the
database, its WAL and the published copy, the simulator's request log, and
every other file under the run's folder.
"""

from __future__ import annotations

import datetime as dt
import inspect
import ipaddress
import logging
import secrets
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drs_pipeline.config import ConfigError, Settings, load_settings_file
from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.drs.client import DrsClient
from drs_pipeline.simulator import ScriptedFault
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.marts import build_marts
from drs_pipeline.warehouse.publish import publish, published_path

from ..helpers import QUICK_RETRY, Simulator, assert_history_invariants, query
from .helpers import BIN, add_jobs, child_env, ids


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def secret_token() -> str:
    return f"SECRET-TOKEN-{secrets.token_hex(12)}"


def write_yaml(path: Path, simulator: Simulator, projects: dict[str, str | None]) -> Path:
    """A drs.yaml of ``projects``: id to the variable of its own token (None: the default)."""
    lines = ["projects:"]
    for project_id, token_env in projects.items():
        lines += [
            f"  - project_id: '{project_id}'",
            "    region: cn-south-2",
            f"    endpoint: {simulator.url}",
        ]
        if token_env:
            lines.append(f"    auth: {{method: token, token_env: {token_env}}}")
    lines += ["auth: {method: token, token_env: DRS_AUTH_TOKEN}", "page_size: 3"]
    path.write_text("\n".join(lines) + "\n")
    return path


def tables_text(database: Path) -> str:
    """Every row of every table of the database, as text."""
    with duckdb.connect(str(database), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
        assert len(tables) >= 4, tables
        rows = {
            (schema, name): con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()
            for schema, name in tables
        }
    return "\n".join(f"{schema}.{name}: {found}" for (schema, name), found in rows.items())


def test_no_secret_leaks_into_any_output_or_file_of_a_run(
    simulator: Simulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, echoing, wrong_token = simulator.project_ids[:3]
    unknown = "e" * 32
    for project_id in (good, echoing, wrong_token):
        add_jobs(simulator, project_id, 7)
    token, wrong = secret_token(), secret_token()
    simulator.app.tokens.clear()
    simulator.app.tokens.add(token)
    env = {"DRS_AUTH_TOKEN": token, "WRONG_TOKEN": wrong}
    config = write_yaml(
        tmp_path / "drs.yaml",
        simulator,
        {good: None, echoing: None, wrong_token: "WRONG_TOKEN", unknown: None},
    )

    def gateway_echoes_the_token() -> None:
        # A gateway that repeats what it was sent: the client must scrub it.
        simulator.faults.script(
            ScriptedFault(
                status=502,
                body={"error_code": "APIGW.0601", "error_msg": f"bad upstream, token {token}"},
                project_id=echoing,
                offset=0,
            ),
            ScriptedFault(
                status=403,
                body={"error_code": "APIGW.0302", "error_msg": f"{token} is not authorized"},
                project_id=echoing,
                offset=3,
                times=99,
            ),
        )

    outputs: dict[str, str] = {}
    databases = [tmp_path / run / "history.duckdb" for run in ("in_process", "dagster", "cli")]
    gateway_echoes_the_token()
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    # 1. The command line, as a user runs it, logging every page. It starts first and
    # runs meanwhile: it spends most of its time starting Dagster.
    (tmp_path / "dagster_home").mkdir()  # the run's storage: searched below like the rest
    cli = subprocess.Popen(
        [str(BIN / "drs-pipeline"), "-v", "sync", "--config", str(config)],
        env=child_env(
            **env, DRS_DUCKDB_PATH=str(databases[2]), DAGSTER_HOME=str(tmp_path / "dagster_home")
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    # 2. An in-process sync, logging everything.
    caplog.set_level(logging.DEBUG)
    report = run_sync(load_settings_file(config, env), databases[0], retry=QUICK_RETRY)
    outcomes = {r.run.project_id: r.run.outcome for r in report.projects}
    assert outcomes == {good: "ok", echoing: "failed", wrong_token: "failed", unknown: "failed"}
    outputs["logs"] = caplog.text + "\n".join(str(vars(r)) for r in caplog.records)
    assert "is not authorized" in outputs["logs"] and "********" in outputs["logs"]
    publish(
        databases[0], published_path({"DRS_DUCKDB_PATH": str(databases[0])}), published_at=now()
    )

    # 3. The whole Dagster job in process: every event and its metadata.
    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(config_path=str(config)),
            "history_db": HistoryDatabaseResource(path=str(databases[1]), lock_timeout_s=5),
        }
    )
    with dg.instance_for_test() as instance:
        result = execute_pipeline(definitions, instance=instance, raise_on_error=False)
        events = [*result.all_events, *instance.all_logs(result.run_id)]
        outputs["dagster events"] = "\n".join(dg.serialize_value(e) for e in events)
    assert not result.success, "the failing projects fail the run"
    assert "APIGW.0301" in outputs["dagster events"] and "DRS.M00261" in outputs["dagster events"]

    outputs["cli stdout"], outputs["cli stderr"] = cli.communicate(timeout=240)
    assert cli.returncode == 1, outputs["cli stderr"][-2000:]
    assert "APIGW.0301" in outputs["cli stderr"] and "DRS.M00261" in outputs["cli stderr"]

    # Every table of every database and of its published copy.
    for database in databases:
        assert ids(database, good), f"{database} holds what landed"
        assert_history_invariants(database)
        for path in (database, database.with_name(f"{database.stem}_published.duckdb")):
            if path.exists():
                outputs[f"tables of {path}"] = tables_text(path)
    outputs["simulator request log"] = "\n".join(map(str, simulator.app.stats.log))
    # Every byte of every file the runs left: databases, WALs, copies, Dagster's storage.
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len([f for f in files if f.name.endswith("_published.duckdb")]) == 3

    for secret in (token, wrong):
        for where, text in outputs.items():
            assert secret not in text, f"a token leaked into {where}"
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"a token leaked into {path}"


# -- TLS ------------------------------------------------------------------------------------


PROJECT_C = "c" * 32


@dataclass
class UntrustedTlsServer:
    url: str
    # What it received after each handshake that succeeded (it must stay empty).
    received: list[bytes] = field(default_factory=list)
    # Connections made to it: how the tests see that a refusal was not retried.
    connections: int = 0


@pytest.fixture
def untrusted_tls_server(tmp_path: Path) -> Iterator[UntrustedTlsServer]:
    """An https server on loopback whose certificate no one trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    server = UntrustedTlsServer(f"https://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            server.connections += 1
            with connection:
                connection.settimeout(2)
                try:
                    with context.wrap_socket(connection, server_side=True) as tls:
                        server.received.append(tls.recv(65536))
                except (ssl.SSLError, OSError):
                    pass  # the client refused our certificate: as it should

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_tls_is_verified_and_there_is_no_way_to_turn_it_off(
    untrusted_tls_server: UntrustedTlsServer, tmp_path: Path, database: Path
) -> None:
    url = untrusted_tls_server.url
    token = secret_token()
    config = tmp_path / "drs.yaml"
    config.write_text(
        f"projects: [{{project_id: '{PROJECT_C}', region: cn-south-2, endpoint: '{url}'}}]\n"
    )

    settings = load_settings_file(config, {"DRS_AUTH_TOKEN": token})
    report = run_sync(settings, database, retry=QUICK_RETRY)

    error = report.projects[0].run.error or ""
    assert report.projects[0].run.outcome == "failed"
    assert f"project {PROJECT_C}, page offset 0: TLS certificate of {url}" in error, error
    assert "CERTIFICATE_VERIFY_FAILED: self-signed certificate" in error, error
    assert untrusted_tls_server.received == [], (
        "no request (and no token) went to a server we could not verify"
    )
    # Not retried: the same certificate would be refused again, and a wrong CA bundle
    # or endpoint must fail in seconds, not after the whole backoff.
    assert "attempts" not in error and untrusted_tls_server.connections == 1
    # The client's own transport verifies certificates and host names...
    client = DrsClient()
    pool = getattr(getattr(client._http, "_transport", None), "_pool", None)
    context = getattr(pool, "_ssl_context", None)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # ...and nothing can say otherwise: not the client's parameters, not the settings,
    # not the configuration file.
    knobs = ("verify", "insecure", "ssl", "tls", "cert")
    parameters = [*inspect.signature(DrsClient).parameters, *Settings.__dataclass_fields__]
    assert not [p for p in parameters if any(knob in p.lower() for knob in knobs)]
    for key in ("verify: false", "insecure: true", "tls_verify: false", "ssl_verify: false"):
        config.write_text(
            f"projects: [{{project_id: '{PROJECT_C}', region: cn-south-2, endpoint: '{url}'}}]\n"
            f"{key}\n"
        )
        with pytest.raises(ConfigError, match="unknown key"):
            load_settings_file(config, {"DRS_AUTH_TOKEN": token})


def test_a_refused_iam_certificate_fails_the_project_at_once(
    untrusted_tls_server: UntrustedTlsServer, tmp_path: Path, database: Path
) -> None:
    url = untrusted_tls_server.url
    password = secret_token()
    config = tmp_path / "drs.yaml"
    config.write_text(
        # The DRS endpoint is never reached: the token it would need is never issued.
        f"projects: [{{project_id: '{PROJECT_C}', region: cn-south-2, "
        "endpoint: 'https://drs.cn-south-2.example.invalid'}]\n"
        f"auth: {{method: password, iam_endpoint: '{url}', domain_name: acme, "
        "user_name: reader, password_env: IAM_PASSWORD}\n"
    )
    settings = load_settings_file(config, {"IAM_PASSWORD": password})

    report = run_sync(settings, database, retry=QUICK_RETRY)

    error = report.projects[0].run.error or ""
    assert report.projects[0].run.outcome == "failed"
    assert f"IAM {url} gave no token" in error, error
    assert "TLS certificate refused (CERTIFICATE_VERIFY_FAILED: self-signed certificate)" in error
    assert "attempts" not in error and password not in error
    assert untrusted_tls_server.connections == 1
    assert untrusted_tls_server.received == [], "the password never went to it"


# -- configuration cannot steer a request elsewhere ------------------------------------------

GOOD_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("project_id", "endpoint", "key"),
    [
        # The project id becomes a path segment: nothing but 32 hex characters.
        (f"{GOOD_ID}/../../v3/auth/tokens", None, "project_id"),
        ("../../" + GOOD_ID[6:], None, "project_id"),
        (f"{GOOD_ID}?limit=1&", None, "project_id"),
        (f"{GOOD_ID}%2F..%2F", None, "project_id"),
        (f"{GOOD_ID}#", None, "project_id"),
        (f"{GOOD_ID[:31]}\\n", None, "project_id"),
        # The endpoint becomes scheme and host: nothing else, and no way to another host.
        (GOOD_ID, "https://drs.cn-south-2.myhuaweicloud.com/v5/other-project", "endpoint"),
        (GOOD_ID, "https://drs.cn-south-2.myhuaweicloud.com@evil.example", "endpoint"),
        (GOOD_ID, "https://evil.example#@drs.cn-south-2.myhuaweicloud.com", "endpoint"),
        (GOOD_ID, "https://evil.example?@drs.cn-south-2.myhuaweicloud.com", "endpoint"),
        (GOOD_ID, "https://evil.example\\\\@drs.cn-south-2.myhuaweicloud.com", "endpoint"),
        (GOOD_ID, "https://drs.example.com\\r\\nX-Injected: 1", "endpoint"),
        (GOOD_ID, "https://drs .example.com", "endpoint"),
        (GOOD_ID, "https://[::1", "endpoint"),
        (GOOD_ID, "http://drs.cn-south-2.myhuaweicloud.com", "endpoint"),
        (GOOD_ID, "http://127.0.0.1.evil.example", "endpoint"),
        (GOOD_ID, "file:///etc/passwd", "endpoint"),
        (GOOD_ID, "//evil.example", "endpoint"),
    ],
)
def test_project_ids_and_endpoints_that_would_steer_a_request_are_rejected(
    tmp_path: Path, project_id: str, endpoint: str | None, key: str
) -> None:
    config = tmp_path / "drs.yaml"
    entry = f'project_id: "{project_id}", region: cn-south-2'
    if endpoint is not None:
        entry += f', endpoint: "{endpoint}"'
    config.write_text(f"projects: [{{{entry}}}]\n")
    with pytest.raises(ConfigError) as rejected:
        load_settings_file(config, {"DRS_AUTH_TOKEN": "t"})
    assert rejected.value.key == f"projects[0].{key}"


def test_redirects_are_not_followed_so_the_token_goes_nowhere_else(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """A 3xx could send the request, token and all, to another host: it is an error."""
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 2)
    elsewhere = socket.create_server(("127.0.0.1", 0))  # would see a followed redirect
    elsewhere.settimeout(0.5)
    port = elsewhere.getsockname()[1]
    simulator.faults.script(
        ScriptedFault(
            status=302,
            body=b"",
            headers={"Location": f"http://127.0.0.1:{port}/steal"},
            project_id=project_id,
        )
    )
    config = write_yaml(tmp_path / "drs.yaml", simulator, {project_id: None})
    try:
        report = run_sync(load_settings_file(config, {"DRS_AUTH_TOKEN": simulator.token}), database)
        with pytest.raises(TimeoutError):
            elsewhere.accept()
    finally:
        elsewhere.close()
    run = report.projects[0].run
    assert run.outcome == "failed" and "HTTP 302" in (run.error or "")


# -- nothing the API returns is SQL ------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE drs.async_jobs; --",
    "x' OR '1'='1",
    'a"; DELETE FROM drs.async_job_history; /*',
    "$project_id",
    "?",
    "Robert'); DROP TABLE drs.sync_runs;--",
    "\\'; SELECT 1; --",
]


def test_api_values_land_verbatim_and_are_never_sql(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    plain = add_jobs(simulator, project_id, 3)
    for i, text in enumerate(HOSTILE):
        simulator.world.add_job(
            project_id,
            async_job_id=f"{text}-{i}",
            status=text,
            domain_name=text,
            user_name=text,
            create_time=simulator.clock.now() - 100 + i,
        )
    # And a record that is rejected, whose raw JSON lands as given.
    simulator.world.add_job(
        project_id,
        async_job_id="rejected",
        raw={"async_job_id": "'; DROP TABLE drs.rejected_records; --", "status": 1},
    )
    config = write_yaml(tmp_path / "drs.yaml", simulator, {project_id: None})
    settings = load_settings_file(config, {"DRS_AUTH_TOKEN": simulator.token})

    report = run_sync(settings, database, retry=QUICK_RETRY)
    build_marts(
        database,
        stuck_thresholds_s=settings.stuck_thresholds_s,
        as_of=dt.datetime.now(dt.UTC),
        configured_projects={p.project_id: p.region for p in settings.projects},
        freshness_minutes=settings.freshness_minutes,
    )

    assert report.all_ok, report.projects[0].run.error
    stored = query(
        database,
        "SELECT async_job_id, status, domain_name, user_name FROM drs.async_jobs "
        "WHERE async_job_id NOT IN (SELECT unnest(?))",
        [plain],
    )
    assert sorted(stored) == sorted((f"{t}-{i}", t, t, t) for i, t in enumerate(HOSTILE))
    marts = query(database, "SELECT domain_name, user_name, status FROM drs.status_counts")
    assert {(t, t, t) for t in HOSTILE} <= set(marts)
    (record,) = query(database, "SELECT record FROM drs.rejected_records")
    assert "'; DROP TABLE drs.rejected_records; --" in record[0]
    assert query(database, "SELECT count(*) FROM drs.sync_runs") == [(1,)]
    assert_history_invariants(database)
