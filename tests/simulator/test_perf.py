"""The benchmark shape, small: one project of 10,000 visible jobs, 1000-row pages.

What keeps the simulator fast enough to benchmark against, checked by the work it
does rather than by timing it (the benchmark measures time: docs/performance.md):
a warm world builds no job again to serve a page, and a look-up by id builds the
one job its id names instead of scanning the project.
"""

from __future__ import annotations

from collections.abc import Callable

from drs_pipeline.simulator import ManualClock, SimProject, WorldSettings, build_simulator
from drs_pipeline.simulator.app import ListQuery
from drs_pipeline.simulator.world import World
from tests.simulator.helpers import T0, TOKEN


def count_built_jobs(world: World) -> Callable[[], int]:
    """Counts the jobs the world builds from now on (the costly step): each one it
    builds enters its job cache."""
    before = set(world._cache)
    return lambda: len(set(world._cache) - before)


def test_a_warm_world_serves_every_page_without_building_a_job_again() -> None:
    settings = WorldSettings(
        projects=(SimProject("b" * 32, "cn-south-4"),),
        arrival_interval_s=1.0,
        retention_s=10_000.0,
        vanish_fraction=0.0,
    )
    # A clock that stands still: on the wall clock a job arrives every second.
    app = build_simulator(settings, tokens={TOKEN}, clock=ManualClock(T0))
    assert 9_990 <= app.world.warm() <= 10_001
    built = count_built_jobs(app.world)
    for offset in range(0, 10_000, 1000):
        query = ListQuery("b" * 32, offset, 1000, "desc", None, None, None, None)
        assert app._page_body(query)
    assert built() == 0


def test_id_lookup_in_a_10000_job_project_does_not_scan() -> None:
    settings = WorldSettings(
        projects=(SimProject("c" * 32, "cn-south-4"),),
        arrival_interval_s=1.0,
        retention_s=10_000.0,
    )
    world = build_simulator(settings, tokens={TOKEN}).world
    total, [job] = world.page("c" * 32, T0, offset=5000, limit=1)
    assert total > 9000
    world._cache.clear()  # so that the look-up has to build what it needs
    built = count_built_jobs(world)
    assert world.list_jobs("c" * 32, T0, async_job_id=job.async_job_id) == [job]
    assert built() <= 2
