"""Fixtures: one real server on loopback for the whole session, reset per test.

Starting and stopping uvicorn costs a fraction of a second, so tests share one
server and get a fresh world, faults, clock, tokens and stats each (the app reads
them per request). Helpers are in tests/simulator/helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from drs_pipeline.simulator import (
    Faults,
    ManualClock,
    SimulatorApp,
    SimulatorServer,
    World,
    WorldSettings,
)
from tests.simulator.helpers import T0, TOKEN, Sim


@pytest.fixture(scope="session")
def _server() -> Iterator[tuple[SimulatorApp, SimulatorServer]]:
    clock = ManualClock(T0)
    app = SimulatorApp(World(WorldSettings(), clock), Faults(), tokens={TOKEN})
    with SimulatorServer(app) as server:
        yield app, server


@pytest.fixture
def sim(_server: tuple[SimulatorApp, SimulatorServer]) -> Iterator[Sim]:
    app, server = _server
    clock = ManualClock(T0)
    app.world = World(WorldSettings(), clock)
    app.faults = Faults()
    app.tokens = {TOKEN}
    app.expired_tokens = set()
    app.stats.reset()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield Sim(app, server, client, clock)
