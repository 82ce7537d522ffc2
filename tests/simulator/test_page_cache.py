"""The simulator's page cache, which the benchmark turns on (``simulator.app``)."""

from __future__ import annotations

from drs_pipeline.simulator import ManualClock, WorldSettings, build_simulator
from drs_pipeline.simulator.app import ListQuery
from drs_pipeline.simulator.model import ANCHOR_2026, default_projects


def test_cached_pages_follow_the_clock_and_every_scripted_change() -> None:
    settings = WorldSettings(seed=3, streaming=False, projects=default_projects(3, 1))
    clock = ManualClock(ANCHOR_2026 + 86400)
    app = build_simulator(settings, tokens={"t"}, clock=clock, page_cache=10)
    project_id = settings.projects[0].project_id
    job = app.world.add_job(project_id, create_time=clock.now() - 10)
    query = ListQuery(project_id, 0, 10, "asc", None, None, None, None)
    first = app._page_body(query)
    assert app._page_body(query) is first  # served from the cache
    app.world.set_status(project_id, job.async_job_id, "ASYNC_JOB_VALIDATE_FAILED")
    changed = app._page_body(query)
    assert b"ASYNC_JOB_VALIDATE_FAILED" in changed and changed is not first
    clock.advance(1)
    assert app._page_body(query) is not changed  # another moment, rendered again
