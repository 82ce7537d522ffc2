"""The benchmark shape, small: one project of 10,000 visible jobs, 1000-row pages.

The bound is loose (a shared CI machine); the measured figure on an idle one is ~1-2 ms.
"""

from __future__ import annotations

import statistics
import time

from drs_pipeline.simulator import SimProject, WorldSettings, build_simulator
from drs_pipeline.simulator.app import ListQuery
from tests.simulator.helpers import T0, TOKEN


def test_a_1000_row_page_of_a_10000_job_project_is_fast_once_warm() -> None:
    settings = WorldSettings(
        projects=(SimProject("b" * 32, "cn-south-4"),),
        arrival_interval_s=1.0,
        retention_s=10_000.0,
        vanish_fraction=0.0,
    )
    app = build_simulator(settings, tokens={TOKEN})
    assert 9_990 <= app.world.warm() <= 10_001
    timings = []
    for offset in range(0, 10_000, 1000):
        query = ListQuery("b" * 32, offset, 1000, "desc", None, None, None, None)
        started = time.perf_counter()
        app._page_body(query)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.05


def test_id_lookup_in_a_10000_job_project_does_not_scan() -> None:
    settings = WorldSettings(
        projects=(SimProject("c" * 32, "cn-south-4"),),
        arrival_interval_s=1.0,
        retention_s=10_000.0,
    )
    app = build_simulator(settings, tokens={TOKEN})
    world = app.world
    t = T0
    total, [job] = world.page("c" * 32, t, offset=5000, limit=1)
    started = time.perf_counter()
    assert world.list_jobs("c" * 32, t, async_job_id=job.async_job_id) == [job]
    assert time.perf_counter() - started < 0.05
    assert total > 9000
