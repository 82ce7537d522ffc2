"""Shared fixtures: the simulator served over loopback HTTP, a config file that
points at it, a real DuckDB file, and a sync runner with quick retries."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

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
from drs_pipeline.warehouse.health import describe_violations, invariant_violations

# Retries as in production, but with waits short enough for a test suite.
QUICK_RETRY = RetryPolicy(
    max_attempts=4, initial_delay_s=0.01, max_delay_s=0.05, max_total_wait_s=5.0
)


@dataclass
class ObservedPage:
    """A page as normalization reads it (``warehouse.normalize.ObservedPage``): the
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
    app = SimulatorApp(world, faults, clock, tokens={token})
    server = SimulatorServer(app).start()
    return server, Simulator(world, faults, app, clock, server.url, token)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """Scripted jobs only (no stream), two projects; the clock moves when a test says."""
    settings = WorldSettings(seed=3, streaming=False, projects=())
    server, handle = start_simulator(settings)
    with server:
        yield handle


@pytest.fixture
def streaming_simulator() -> Iterator[Simulator]:
    """The generated world: jobs arriving, moving through their lifecycle, vanishing."""
    settings = WorldSettings(seed=11, speed=60.0)
    server, handle = start_simulator(settings)
    with server:
        yield handle


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "history.duckdb"


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
