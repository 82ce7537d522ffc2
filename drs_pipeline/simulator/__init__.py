"""An embedded simulator of the DRS v5 ``GET /v5/{project_id}/batch-async-jobs`` API.

It is what the client is tested against, so it shares no code with the client
side: only the API's facts (status names, the list path) from ``drs.statuses``.

Three ways to run it:

* in process: ``httpx.AsyncClient(transport=httpx.ASGITransport(app=app), ...)``;
* real HTTP on loopback in a background thread: ``SimulatorServer(app).start()``;
* a foreground process: ``run_forever(app, host, port)``
  (``drs-pipeline simulator``, whose flags mirror the switches below).

What the documentation leaves open is played by switches, all off by default:
``WorldSettings.tie_share`` (batch creations sharing a create_time second) and,
on ``Faults``, ``max_page``, ``random_ties``, ``empty_first_listing`` /
``empty_listings``, ``ignore_id_filter``, ``unknown_id_error``, ``total_count``,
``ignore_offset`` and ``trickle_s`` (faults.py says what each does). Every
project belongs to one account (``WorldSettings.domain_of``).
"""

from __future__ import annotations

from drs_pipeline.simulator.app import RequestRecord, SimStats, SimulatorApp
from drs_pipeline.simulator.clock import Clock, ManualClock, WallClock
from drs_pipeline.simulator.faults import Faults, ScriptedFault
from drs_pipeline.simulator.model import SimJob, SimProject, WorldSettings
from drs_pipeline.simulator.server import SimulatorServer, run_forever
from drs_pipeline.simulator.world import World

__all__ = [
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
    *,
    tokens: set[str],
    clock: Clock | None = None,
    job_cache: int | None = None,
    page_cache: int = 0,
) -> SimulatorApp:
    """A ready app: world, faults (all off by default), the accepted tokens (no
    default: a token in code would be a secret in code) and one clock shared by
    world and app (default: wall time).
    ``job_cache``: see ``World``; ``page_cache``: see ``SimulatorApp``."""
    clock = clock if clock is not None else WallClock()
    world = World(settings, clock, job_cache=job_cache)
    return SimulatorApp(
        world,
        faults if faults is not None else Faults(),
        clock,
        tokens=tokens,
        page_cache=page_cache,
    )
