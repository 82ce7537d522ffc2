"""An embedded simulator of the DRS v5 ``GET /v5/{project_id}/batch-async-jobs`` API.

It is what the client is tested against, so it shares no code with the client
side: only the API's facts (status names, the list path) from ``drs.statuses``.

Three ways to run it:

* in process: ``httpx.AsyncClient(transport=httpx.ASGITransport(app=app), ...)``;
* real HTTP on loopback in a background thread: ``SimulatorServer(app).start()``;
* a foreground process: ``run_forever(app, host, port)``.
"""

from __future__ import annotations

from drs_pipeline.simulator.app import DEFAULT_TOKEN, RequestRecord, SimStats, SimulatorApp
from drs_pipeline.simulator.clock import Clock, ManualClock, WallClock
from drs_pipeline.simulator.faults import Faults, ScriptedFault
from drs_pipeline.simulator.model import SimJob, SimProject, WorldSettings
from drs_pipeline.simulator.server import SimulatorServer, run_forever
from drs_pipeline.simulator.world import World

__all__ = [
    "DEFAULT_TOKEN",
    "Clock",
    "Faults",
    "ManualClock",
    "RequestRecord",
    "ScriptedFault",
    "SimJob",
    "SimProject",
    "SimStats",
    "SimulatorApp",
    "SimulatorServer",
    "WallClock",
    "World",
    "WorldSettings",
    "build_simulator",
    "run_forever",
]


def build_simulator(
    settings: WorldSettings,
    faults: Faults | None = None,
    tokens: set[str] | None = None,
    clock: Clock | None = None,
) -> SimulatorApp:
    """A ready app: world, faults (all off by default), accepted tokens (default
    ``{DEFAULT_TOKEN}``) and one clock shared by world and app (default: wall time)."""
    clock = clock if clock is not None else WallClock()
    world = World(settings, clock)
    return SimulatorApp(world, faults if faults is not None else Faults(), clock, tokens)
