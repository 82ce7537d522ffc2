"""Helpers shared by the test files: the simulator served over loopback HTTP and its
handles, configuration files that point at it, real syncs, and queries of a DuckDB file.

Fixtures stay in conftest.py; test files import these by name.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from drs_pipeline.config import Settings, load_settings_file
from drs_pipeline.drs.client import PagingPolicy
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.simulator import (
    Faults,
    ManualClock,
    SimulatorApp,
    SimulatorServer,
    World,
    WorldSettings,
)
from drs_pipeline.sync import SyncReport, run_sync
from drs_pipeline.warehouse import normalize
from drs_pipeline.warehouse.health import describe_violations, invariant_violations
from drs_pipeline.warehouse.merge import ProjectSync, SyncRunRow
from drs_pipeline.warehouse.normalize import Normalized

# Retries as in production, but with waits short enough for a test suite.
QUICK_RETRY = RetryPolicy(
    max_attempts=4, initial_delay_s=0.01, max_delay_s=0.05, max_total_wait_s=5.0
)


@dataclass
class ObservedPage:
    """A page as normalization reads it (``warehouse.records.ObservedPage``): the
    test double of the client's Page, without what only the listing uses."""

    offset: int
    jobs: list[Any]
    fetched_at: datetime


@dataclass
class Simulator:
    """A simulator served on 127.0.0.1, and the handles a test steers it with."""

    world: World
    faults: Faults
    app: SimulatorApp
    clock: ManualClock
    url: str
    token: str

    @property
    def project_ids(self) -> list[str]:
        return [p.project_id for p in self.world.projects]

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)


def start_simulator(settings: WorldSettings) -> tuple[SimulatorServer, Simulator]:
    # Whole seconds: the API serves ISO create_time to the second.
    clock = ManualClock(start=float(int(time.time())))
    world = World(settings, clock)
    faults = Faults(seed=7)
    token = secrets.token_hex(16)
    app = SimulatorApp(world, faults, tokens={token})
    server = SimulatorServer(app).start()
    return server, Simulator(world, faults, app, clock, server.url, token)


def write_config(
    path: Path,
    simulator: Simulator,
    project_ids: list[str] | None = None,
    *,
    page_size: int = 1000,
    max_concurrency: int = 8,
    **keys: object,
) -> Path:
    """A drs.yaml for ``simulator``'s projects; ``keys`` are more top-level keys."""
    projects = project_ids if project_ids is not None else simulator.project_ids
    lines = ["projects:"]
    for project_id in projects:
        lines += [
            f"  - project_id: '{project_id}'",
            "    region: cn-south-2",
            f"    endpoint: {simulator.url}",
        ]
    lines += [
        "auth: {method: token, token_env: DRS_AUTH_TOKEN}",
        f"page_size: {page_size}",
        f"max_concurrency: {max_concurrency}",
        *(f"{key}: {value}" for key, value in keys.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def settings_for(
    simulator: Simulator,
    tmp_path: Path,
    project_ids: list[str] | None = None,
    **options: object,
) -> Settings:
    config = write_config(tmp_path / "drs.yaml", simulator, project_ids, **options)
    return load_settings_file(config, {"DRS_AUTH_TOKEN": simulator.token})


def sync(
    simulator: Simulator,
    settings: Settings,
    database: Path,
    *,
    retry: RetryPolicy = QUICK_RETRY,
    paging: PagingPolicy | None = None,
) -> SyncReport:
    """One real sync over loopback HTTP, observing time on the simulator's clock."""
    return run_sync(settings, database, retry=retry, paging=paging, clock=simulator.now)


def query(database: Path, sql: str, params: list[object] | None = None) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params or []).fetchall()


def assert_history_invariants(database: Path) -> None:
    """The history's promises (warehouse/checks.sql), naming the rows that break them."""
    with duckdb.connect(str(database), read_only=True) as con:
        broken = invariant_violations(con)
    assert not broken, describe_violations(broken)


# -- snapshots for the warehouse's tests (test_store, test_writer) -------------------

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def snapshot(project: str, jobs: dict[str, str], at: datetime) -> Normalized:
    frame = pd.DataFrame(
        {
            "project_id": project,
            "region": "cn-south-2",
            "async_job_id": list(jobs),
            "status": list(jobs.values()),
            "domain_name": "d",
            "user_name": "u",
            "create_time": pd.Timestamp("2026-11-01", tz="UTC"),
            "observed_at": pd.Timestamp(at),
        },
        index=pd.RangeIndex(len(jobs)),
    ).astype(normalize.JOB_DTYPES)
    rejected = pd.DataFrame(columns=list(normalize.REJECTED_COLUMNS), dtype="str")
    return Normalized(frame, rejected)


def project_sync(
    sync_id: str,
    project: str,
    jobs: dict[str, str],
    at: datetime,
    gone: frozenset[str] = frozenset(),
) -> ProjectSync:
    run = SyncRunRow(sync_id, project, at, at, "ok", None, 1, len(jobs), len(jobs))
    return ProjectSync(run, snapshot(project, jobs, at), gone, at)


def rounds() -> list[list[ProjectSync]]:
    """Three syncs of three projects: new jobs, changes, a job gone and back, a stale one."""
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    t1, t2, t3 = T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)
    return [
        [
            project_sync("s1", a, {"a1": "V", "a2": "V"}, t1),
            project_sync("s1", b, {"b1": "V"}, t1),
            project_sync("s1", c, {}, t1),
        ],
        [
            project_sync("s2", a, {"a1": "OK", "a3": "V"}, t2, frozenset({"a2"})),
            project_sync("s2", b, {"b1": "V"}, t2),
            project_sync("s2", c, {"c1": "V"}, t2),
        ],
        [
            project_sync("s3", a, {"a1": "OK", "a2": "V", "a3": "FAIL"}, t3),
            # Stale: observed before what the history knows of b1.
            project_sync("s3", b, {"b1": "CHANGED"}, t1),
            project_sync("s3", c, {"c1": "V"}, t3),
        ],
    ]


def history_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            table: con.execute(f"FROM drs.{table} ORDER BY ALL").fetchall()
            for table in ("async_jobs", "async_job_history", "sync_runs")
        }


# -- another process holding the database ------------------------------------------------

_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


@contextmanager
def another_process_holding(database: Path) -> Iterator[int]:
    """A separate Python process with ``database`` open for writing, for as long as
    the block runs; yields its PID (what a lock error must name)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def environment_without_ours(**extra: str) -> dict[str, str]:
    """This process's environment without any ``DRS_``/``DAGSTER_`` variable, plus
    ``extra``: for a service started as a subprocess, configured by the test alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    return {**env, **extra}


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, as systemd stops a service; SIGKILL if it has not exited in ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
