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
``ignore_offset``, ``trickle_s`` and ``no_date_header`` (faults.py says what
each does). ``WorldSettings.clock_skew_s`` runs the server's clock ahead of (or
behind) the clock it is given. Every project belongs to one account
(``WorldSettings.domain_of``).
"""

from __future__ import annotations

from drs_pipeline.simulator.app import RequestRecord, SimStats, SimulatorApp
from drs_pipeline.simulator.clock import Clock, ManualClock, SkewedClock, WallClock
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
    "SkewedClock",
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
    default: a token in code would be a secret in code) and the clock the world,
    and so the app, reads (default: wall time; skewed by ``settings.clock_skew_s``).
    ``job_cache``: see ``World``; ``page_cache``: see ``SimulatorApp``."""
    world = World(settings, clock, job_cache=job_cache)
    return SimulatorApp(
        world,
        faults if faults is not None else Faults(),
        tokens=tokens,
        page_cache=page_cache,
    )
