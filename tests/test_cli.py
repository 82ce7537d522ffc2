"""The command line, run as a user runs it: a subprocess, real HTTP, a real file."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

import duckdb
import httpx
import pytest

from drs_pipeline import cli
from drs_pipeline.config import ConfigError, embedded_simulator_settings, load_settings_file
from drs_pipeline.drs import statuses
from drs_pipeline.simulator.faults import ScriptedFault
from drs_pipeline.warehouse.store import Warehouse
from drs_pipeline.warehouse.target import claim_target

from .helpers import Simulator, query, settings_for, sync, write_config

CLI = str(Path(sys.executable).parent / "drs-pipeline")


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    return subprocess.run(
        [CLI, *args], env={**full_env, **env}, cwd=cwd, capture_output=True, text=True, timeout=240
    )


# What the terminal must not show without -v: a Python traceback, or Dagster's console
# log (its lines, its event names, its stack traces).
NOISE = (
    "Traceback",
    "Stack Trace:",
    "dagster._core",
    " - dagster - ",
    "STEP_FAILURE",
    "RUN_FAILURE",
)
TABLE_HEADER = ["project_id", "outcome", "pages", "jobs", "new", "changed", "gone", "rejected"]
REQUEST_ID = "5f2c0e1d9b8a47c6a3e4d5f60718293a"


def assert_quiet(done: subprocess.CompletedProcess[str]) -> None:
    for marker in NOISE:
        assert marker not in done.stdout and marker not in done.stderr, marker


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The per-project table after the first line, by project, each row split in cells."""
    header, *rows = stdout.splitlines()[1:]
    assert header.split() == TABLE_HEADER
    return {row.split()[0]: row.split()[1:] for row in rows}


def refuse(simulator: Simulator, project_id: str) -> None:
    """The API refuses the project, as DRS does a project ID it does not know."""
    simulator.faults.script(
        ScriptedFault(
            status=403,
            body={"error_code": "DRS.M00261", "error_msg": "Invalid project ID."},
            headers={"X-Request-Id": REQUEST_ID},
            project_id=project_id,
        )
    )


def test_sync_all_ok_prints_the_table_and_nothing_else(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    good = simulator.project_ids[0]
    for _ in range(3):
        simulator.world.add_job(good)
    config = write_config(tmp_path / "ok.yaml", simulator, [good])
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    done = run(["sync"], {**env, "DRS_CONFIG": str(config)}, tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == f"syncing 1 project from {config} into {database}"
    assert table_rows(done.stdout) == {good: ["ok", "1", "3", "3", "0", "0", "0"]}


def test_sync_reports_a_refused_project_in_one_plain_line(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """The issue's case: one project refused among good ones. The table, then one line
    with the DRS error code and request id; Dagster's stack traces only with -v."""
    good, refused = simulator.project_ids[:2]
    for _ in range(3):
        simulator.world.add_job(good)
    config = write_config(tmp_path / "drs.yaml", simulator, [good, refused])
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    refused_line = (
        f"{refused}: failed: project {refused}, page offset 0: HTTP 403 DRS.M00261: "
        f"Invalid project ID. (X-Request-Id {REQUEST_ID})"
    )

    refuse(simulator, refused)
    done = run(["sync", "--config", str(config)], env, tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[0] == f"syncing 2 projects from {config} into {database}"
    assert table_rows(done.stdout) == {
        good: ["ok", "1", "3", "3", "0", "0", "0"],
        refused: ["failed", "0", "0", "0", "0", "0", "0"],
    }
    assert done.stderr.splitlines() == [refused_line]
    assert_quiet(done)

    # -v after the command: every page, and Dagster's event log with its stack traces.
    refuse(simulator, refused)
    done = run(["sync", "-v", "--config", str(config)], env, tmp_path)
    assert done.returncode == 1, done.stderr
    assert set(table_rows(done.stdout)) == {good, refused}
    assert f"DEBUG project {good}: page offset 0: 3 jobs" in done.stderr
    assert "dagster - ERROR" in done.stderr and "Stack Trace:" in done.stderr
    assert "DagsterAssetCheckFailedError" in done.stderr
    assert done.stderr.splitlines()[-1] == refused_line
    assert "Traceback (most recent call last)" not in done.stdout + done.stderr
    assert query(database, "SELECT count(DISTINCT sync_id) FROM drs.sync_runs") == [(2,)]


def test_sync_project_syncs_those_projects_alone_in_one_run(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    first, second, third = simulator.project_ids[:3]
    for project_id in (first, second, third):
        simulator.world.add_job(project_id)
    config = write_config(tmp_path / "drs.yaml", simulator, [first, second, third])
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}

    done = run(["sync", "--config", str(config), "--project", second], env, tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == f"syncing 1 of 3 projects from {config} into {database}"
    assert table_rows(done.stdout) == {second: ["ok", "1", "1", "1", "0", "0", "0"]}
    assert {r.project_id for r in simulator.app.stats.log} == {second}

    # Repeatable, and not necessarily neighbours in the file: still one run, one sync.
    done = run(
        ["sync", "--config", str(config), "--project", third, "--project", first], env, tmp_path
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == f"syncing 2 of 3 projects from {config} into {database}"
    assert set(table_rows(done.stdout)) == {first, third}
    assert query(
        database,
        "SELECT count(DISTINCT sync_id), count(*) FROM drs.sync_runs WHERE project_id <> ?",
        [second],
    ) == [(1, 2)]


def test_sync_an_unknown_project_exits_2_before_any_request(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    first, second = simulator.project_ids[:2]
    config = write_config(tmp_path / "drs.yaml", simulator, [first, second])
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    unknown = "e" * 32

    done = run(
        [
            "sync",
            "--config",
            str(config),
            "--project",
            first,
            "--project",
            unknown,
            "--project",
            "x",
        ],
        env,
        tmp_path,
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        f"error: --project {unknown}: not one of the 2 projects of {config}",
        f"error: --project x: not one of the 2 projects of {config}",
    ]
    assert simulator.app.stats.requests == 0
    assert not database.exists()


def test_sync_configuration_error_exits_2_before_any_request(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    config = write_config(tmp_path / "drs.yaml", simulator)
    done = run(["sync"], {"DRS_DUCKDB_PATH": str(database)}, tmp_path)  # ./drs.yaml, no token
    assert (done.returncode, done.stdout) == (2, "")
    with pytest.raises(ConfigError) as raised:
        load_settings_file(config, {})
    assert "auth.token_env: environment variable DRS_AUTH_TOKEN is not set" in str(raised.value)
    assert done.stderr.splitlines() == [f"configuration error: {raised.value}"]
    assert simulator.app.stats.requests == 0 and not database.exists()


def test_a_configuration_error_inside_the_run_exits_2_in_one_plain_line(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """The file changes between the command's own check and the run's (a FIFO here, so
    that the two reads get two documents): the run's dg.Failure becomes one line, exit 2."""
    good = write_config(tmp_path / "good.yaml", simulator, simulator.project_ids[:2]).read_text()
    broken = good.replace("page_size: 1000", "page_size: lots")
    (tmp_path / "broken.yaml").write_text(broken)
    with pytest.raises(ConfigError) as raised:
        load_settings_file(tmp_path / "broken.yaml", {"DRS_AUTH_TOKEN": simulator.token})
    fifo = tmp_path / "drs.yaml"
    os.mkfifo(fifo)
    done_serving = threading.Event()

    def serve() -> None:
        # The first reader gets the good document, every later one the broken one.
        documents = itertools.chain([good], itertools.repeat(broken))
        document = next(documents)
        while not done_serving.is_set():
            writer = _open_writer(fifo)
            if writer is None:
                time.sleep(0.01)
                continue
            with contextlib.suppress(BrokenPipeError), os.fdopen(writer, "w") as pipe:
                pipe.write(document)
            # One document per reader: wait until this one has closed the pipe.
            while not done_serving.is_set() and (writer := _open_writer(fifo)) is not None:
                os.close(writer)
                time.sleep(0.01)
            document = next(documents)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
        done = run(["sync", "--config", str(fifo)], env, tmp_path)
    finally:
        done_serving.set()
        server.join(timeout=10)
    assert done.returncode == 2, done.stderr
    assert done.stdout.splitlines() == [f"syncing 2 projects from {fifo} into {database}"]
    expected = str(raised.value).replace(str(tmp_path / "broken.yaml"), str(fifo))
    assert done.stderr.splitlines() == [f"configuration error: {expected}"]
    assert_quiet(done)
    assert simulator.app.stats.requests == 0 and not database.exists()


def _open_writer(fifo: Path) -> int | None:
    """The write end of ``fifo`` (blocking), or None while nobody has it open to read."""
    try:
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO
        return None
    os.set_blocking(writer, True)
    return writer


def test_version_and_verbose_on_either_side_of_the_command(tmp_path: Path) -> None:
    done = run(["--version"], {}, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"drs-pipeline {version('drs_pipeline')}\n",
        "",
    )
    for argv, verbose in [
        (["sync"], False),
        (["-v", "sync"], True),
        (["sync", "-v"], True),
        (["sync", "--verbose", "--config", "x.yaml"], True),
        (["demo", "--syncs", "1", "-v"], True),
    ]:
        assert cli._parser(argv).parse_args(argv).verbose is verbose, argv


def test_each_command_has_a_description_its_defaults_and_its_exit_codes(tmp_path: Path) -> None:
    expected = {
        "sync": [
            "Sync every configured project once",
            "--config CONFIG      configuration file (default: $DRS_CONFIG, else",
            "--project ID         sync only this configured project (repeatable; default:",
            "  0  every project synced ok",
            "  1  some project failed or was incomplete (the others still landed), or a",
            "  2  configuration error, or a --project that is not configured (nothing was",
        ],
        "watch": [
            "Observe the jobs in a watched status (watch.statuses of drs.yaml) every few",
            "--for SECONDS        stop after this long (default: run until Ctrl-C)",
            "  0  stopped (Ctrl-C, SIGTERM, or --for ran out), whatever the rounds found",
            "  2  configuration error, the watch is off (watch.statuses is empty) or the",
        ],
        "demo": [
            "Run the whole product on the embedded simulator",
            "--syncs SYNCS        syncs to run (default: 4)",
            "--interval INTERVAL  seconds between syncs (default: 3.0)",
            "  0  every project of every sync ok",
            "  1  some project of some sync failed or was incomplete",
            "  2  the database holds projects that are not the simulator's",
        ],
        "sql": [
            "Run a read-only SQL query against the published history",
            "  0  the result was printed",
            "  1  the query failed, or there is no published history yet",
            "  2  wrong options",
        ],
        "simulator": [
            "Serve the DRS simulator over HTTP on loopback",
            "--port PORT           (default: 8600)",
            "  0  stopped (Ctrl-C or SIGTERM)",
            "  2  a variable it needs is not set",
        ],
        "bench": [
            "Benchmark sync, latency and merge",
            "limit of each request (default: 1000)",
            "  0  every scenario ran (met or not)",
            "  1  a scenario could not run",
        ],
    }
    for command, lines in expected.items():
        done = run([command, "--help"], {}, tmp_path)
        assert (done.returncode, done.stderr) == (0, ""), command
        assert "\nexit codes:\n" in done.stdout, command
        for line in lines:
            assert line in done.stdout, (command, line)


def test_exit_codes_of_wrong_options_and_a_failed_query(tmp_path: Path) -> None:
    done = run(["sync", "--no-such-option"], {}, tmp_path)
    assert done.returncode == 2 and "unrecognized arguments: --no-such-option" in done.stderr
    done = run(["sql", "SELECT 1", "--database", str(tmp_path / "none.duckdb")], {}, tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("error: ")
    assert_quiet(done)


def test_only_the_bench_command_imports_the_benchmark(tmp_path: Path) -> None:
    code = (
        "import sys; from drs_pipeline import cli; "
        "cli._parser(sys.argv[1:]); print('drs_pipeline.bench' in sys.modules)"
    )
    for argv, imported in [(["sync"], "False"), (["-v", "bench", "--quick"], "True")]:
        done = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == imported, argv


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


# -- watch ---------------------------------------------------------------------------------


def watched_history(simulator: Simulator, tmp_path: Path, database: Path) -> tuple[str, Path]:
    """A history synced with two jobs validating, then one of them validated: the project
    and a configuration for the command."""
    project_id = simulator.project_ids[0]
    passed = simulator.world.add_job(project_id).async_job_id
    simulator.world.add_job(project_id)
    sync(simulator, settings_for(simulator, tmp_path, [project_id]), database)
    simulator.clock.advance(1)
    simulator.world.set_status(project_id, passed, statuses.VALIDATE_SUCCESS)
    return project_id, write_config(tmp_path / "watch.yaml", simulator, [project_id])


def test_watch_prints_one_line_per_round_and_exits_0_when_its_time_is_up(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    _, config = watched_history(simulator, tmp_path, database)
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    started = time.monotonic()
    done = run(["watch", "--for", "1.5", "--every", "30", "--config", str(config)], env, tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"watching 1 project for {statuses.VALIDATING} every 30 s for 1.5 s, "
        f"from {config} into {database}",
        "round 1: 1 project, 2 jobs observed, 1 changed, 0 new left to the next sync",
    ]
    # It stops when --for runs out, not at the next round's start.
    assert time.monotonic() - started < 25
    assert query(database, "SELECT count(*) FROM drs.sync_runs") == [(1,)]
    assert query(database, "SELECT list_sort(list(status)) FROM drs.async_jobs") == [
        ([statuses.VALIDATING, statuses.VALIDATE_SUCCESS],)
    ]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_watch_runs_rounds_until_stopped_and_exits_0_without_a_traceback(
    simulator: Simulator, tmp_path: Path, database: Path, stop: signal.Signals
) -> None:
    _, config = watched_history(simulator, tmp_path, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    env |= {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    watcher = subprocess.Popen(
        [CLI, "watch", "--every", "0.5", "--config", str(config)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()
        rounds = [watcher.stdout.readline(), watcher.stdout.readline()]
        watcher.send_signal(stop)
        rest, stderr = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
        watcher.wait()
    assert (watcher.returncode, stderr) == (0, "")
    assert header == (
        f"watching 1 project for {statuses.VALIDATING} every 0.5 s until Ctrl-C, "
        f"from {config} into {database}\n"
    )
    assert rounds == [
        "round 1: 1 project, 2 jobs observed, 1 changed, 0 new left to the next sync\n",
        "round 2: 1 project, 1 job observed, 0 changed, 0 new left to the next sync\n",
    ]
    for number, line in enumerate(rest.splitlines(), start=3):
        assert (
            line
            == f"round {number}: 1 project, 1 job observed, 0 changed, 0 new left to the next sync"
        )


def test_watch_reports_a_project_it_cannot_list_and_goes_on(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    good, config = watched_history(simulator, tmp_path, database)
    refused = simulator.project_ids[1]
    config = write_config(tmp_path / "watch.yaml", simulator, [good, refused])
    refuse(simulator, refused)
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    done = run(["watch", "--for", "1", "--config", str(config)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "round 1: 2 projects (1 failed), 2 jobs observed, 1 changed, 0 new left to the next sync"
    ]
    assert done.stderr.splitlines() == [
        f"{refused}: failed: project {refused}, listing status={statuses.VALIDATING}, "
        f"page offset 0: HTTP 403 DRS.M00261: Invalid project ID. (X-Request-Id {REQUEST_ID})"
    ]


@pytest.mark.parametrize(
    ("watch", "problem"),
    [
        ("{seconds: 0}", "watch.seconds: must be from 1 to 86400, got 0"),
        ("{statuses: []}", "watch.statuses: is empty: the watch is off"),
    ],
)
def test_watch_configuration_error_exits_2_in_one_line_before_any_request(
    simulator: Simulator, tmp_path: Path, database: Path, watch: str, problem: str
) -> None:
    config = write_config(tmp_path / "drs.yaml", simulator, watch=watch)
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    done = run(["watch", "--config", str(config)], env, tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [f"configuration error: {config}: {problem}"]
    assert_quiet(done)
    assert simulator.app.stats.requests == 0 and not database.exists()


def test_watch_refuses_a_database_of_the_other_kind_and_wrong_options(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    with Warehouse(database) as warehouse:
        claim_target(warehouse.connection, database, embedded_simulator_settings())
    config = write_config(tmp_path / "drs.yaml", simulator)
    env = {"DRS_AUTH_TOKEN": simulator.token, "DRS_DUCKDB_PATH": str(database)}
    done = run(["watch", "--config", str(config)], env, tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"configuration error: {database}: (database): holds the embedded")
    assert simulator.app.stats.requests == 0

    done = run(["watch", "--every", "0"], env, tmp_path)
    assert done.returncode == 2
    assert "argument --every: '0' is not a positive number of seconds" in done.stderr
    assert_quiet(done)
