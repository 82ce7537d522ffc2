"""Matrix row 5: jobs created and vanishing between page requests, in both sort directions.

Offset paging over a moving list repeats rows (an arrival shifts later offsets
under desc) and skips rows (a departure shifts them the other way). The sync
must land every job it saw exactly once, mark gone only what the API confirms
absent, look up a known job it skipped, and call a listing that never settles
``incomplete`` without marking anything gone.

The list is moved two ways: by the simulator's random drift fault, and by the
sync's own clock, which the client reads right after every response, so a test
can change the world at a precise point between two page requests.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from drs_pipeline.drs.client import DrsClient, PagingPolicy, ProjectTarget
from drs_pipeline.drs.listing import list_project
from drs_pipeline.simulator import ScriptedFault
from drs_pipeline.sync import run_sync

from ..helpers import (
    QUICK_RETRY,
    Simulator,
    assert_history_invariants,
    query,
    settings_for,
    sync,
)
from .helpers import add_jobs, ids, visible

PAGE = 4
DIRECTIONS = ["asc", "desc"]


class MovingClock:
    """The sync's clock, which moves the list when it is read (after each response),
    with probability ``rate``: a job arrives and/or a visible one leaves. Records
    what it did. With ``tick_s``, each read then moves the simulator's clock on, so
    that jobs arriving one after the other are created in different seconds."""

    def __init__(
        self,
        simulator: Simulator,
        project_id: str,
        seed: int,
        *,
        vanish: bool = True,
        rate: float = 1.0,
        tick_s: float = 0.0,
    ) -> None:
        self.simulator = simulator
        self.project_id = project_id
        self.rng = random.Random(seed)
        self.vanish = vanish
        self.rate = rate
        self.tick_s = tick_s
        self.created: list[str] = []
        self.vanished: list[str] = []

    def __call__(self) -> datetime:
        now = self.simulator.now()
        self.move()
        self.simulator.clock.advance(self.tick_s)
        return now

    def move(self) -> None:
        world, project_id = self.simulator.world, self.project_id
        if self.rng.random() >= self.rate:
            return
        action = self.rng.choice(("add", "vanish", "both")) if self.vanish else "add"
        if action in ("add", "both"):
            self.created.append(world.add_job(project_id).async_job_id)
        if action in ("vanish", "both"):
            present = sorted(visible(self.simulator, project_id))
            if present:
                job_id = self.rng.choice(present)
                world.vanish(project_id, job_id)
                self.vanished.append(job_id)


def last_seen(database: Path) -> dict[str, datetime]:
    return dict(query(database, "SELECT async_job_id, last_seen_at FROM drs.async_jobs"))


@pytest.mark.parametrize("sort_dir", DIRECTIONS)
def test_a_list_moving_under_the_pager_loses_nothing_duplicates_nothing_marks_nothing_falsely_gone(
    simulator: Simulator, tmp_path: Path, database: Path, sort_dir: str
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 24)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=PAGE)
    paging = PagingPolicy(page_size=PAGE, sort_dir=sort_dir)
    assert sync(simulator, settings, database, paging=paging).all_ok
    moved = 0
    for round_number, mover in enumerate(["drift-fault", "clock-hook"] * 2):
        simulator.clock.advance(30)
        now = simulator.now()
        known = ids(database, gone=False)
        before = set(visible(simulator, project_id))
        clock: Callable[[], datetime] = simulator.now
        if mover == "drift-fault":
            simulator.faults.drift_rate = 0.5
        else:
            # After some responses only, so that some passes settle and some do not.
            clock = MovingClock(simulator, project_id, seed=round_number, rate=0.3)

        report = run_sync(settings, database, retry=QUICK_RETRY, paging=paging, clock=clock)

        simulator.faults.drift_rate = 0.0
        after = set(visible(simulator, project_id))
        moved += len(before ^ after)
        run = report.projects[0].run
        assert run.outcome in ("ok", "incomplete"), run.error
        assert_history_invariants(database)  # every job stored once, intervals sound
        # Nothing falsely gone: whatever the database calls gone, the API no longer lists.
        assert ids(database, gone=True) & after == set()
        if run.outcome == "incomplete":
            assert run.gone_jobs == 0, "an unsettled listing marks nothing gone"
        else:
            # No known job lost: each one listed throughout was seen, or looked up, now.
            seen_now = {job_id for job_id, at in last_seen(database).items() if at == now}
            assert known & before & after <= seen_now
            # Nor any new one: an ok listing saw every job listed throughout.
            assert before & after <= ids(database, gone=False)
    assert moved > 5, "the list really moved"

    # Once the list is still, one sync converges on exactly what the API lists. The
    # syncs that could not prove their listing complete while it moved marked nothing
    # gone, so more than max_gone_share of the history may have left since the last
    # that did: as the error then asks, this sync is told to expect that.
    simulator.clock.advance(30)
    settings = settings_for(
        simulator,
        tmp_path,
        [project_id],
        page_size=PAGE,
        max_gone_share=1.0,
        max_absence_checks=1000,
    )
    assert sync(simulator, settings, database, paging=paging).all_ok
    listed = set(visible(simulator, project_id))
    assert ids(database, gone=False) == listed
    assert ids(database, gone=True) == ids(database) - listed
    assert_history_invariants(database)


@pytest.mark.parametrize("sort_dir", DIRECTIONS)
def test_a_listing_that_grows_after_every_response_completes_and_lands_every_job(
    simulator: Simulator, tmp_path: Path, database: Path, sort_dir: str
) -> None:
    """No two pages ever agree on total_count, and no pass sees every job there is by
    its end: it sees every job listed when it began, so the sync ends ok and marks
    the job that left. The jobs arrive a second apart, as on a clock that moves: one
    created in the second a pass began may be newer than its count, so it proves
    nothing about it (on a clock that stood still, none would)."""
    project_id = simulator.project_ids[0]
    job_ids = add_jobs(simulator, project_id, 20)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=PAGE)
    paging = PagingPolicy(page_size=PAGE, sort_dir=sort_dir)
    assert sync(simulator, settings, database, paging=paging).all_ok
    simulator.world.vanish(project_id, job_ids[3])
    simulator.clock.advance(30)
    listed = set(visible(simulator, project_id))
    # A job arrives after every response, a second after the one before.
    clock = MovingClock(simulator, project_id, seed=1, vanish=False, tick_s=1.0)

    report = run_sync(settings, database, retry=QUICK_RETRY, paging=paging, clock=clock)

    run = report.projects[0].run
    assert run.outcome == "ok", run.error
    assert ids(database, gone=True) == {job_ids[3]}
    # Every job listed before the sync started landed, and most arrivals did too.
    assert listed <= ids(database, gone=False)
    assert ids(database, gone=False) <= set(visible(simulator, project_id))
    assert_history_invariants(database)


@pytest.mark.parametrize("lookups_fail", [False, True], ids=["lookup-finds-it", "lookup-fails"])
@pytest.mark.parametrize("sort_dir", DIRECTIONS)
def test_a_known_job_skipped_by_a_listing_whose_count_matches_is_looked_up_not_marked_gone(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    sort_dir: str,
    lookups_fail: bool,
) -> None:
    """The case drs-api.md warns about: between page 0 and the rest, a job of page 0
    leaves (the rows after it shift up: one is never seen) and one arrives where it
    does not shift anything (last, in the order asked for) with a create_time of an
    earlier second (listed late), so nothing tells it from a job listed when the pass
    began. total_count matches, every page agrees, the pass settles: only the lookup
    by id can tell the skipped job from a gone one."""
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 12)
    truly_gone = add_jobs(simulator, project_id, 1)[0]
    settings = settings_for(simulator, tmp_path, [project_id], page_size=PAGE)
    paging = PagingPolicy(page_size=PAGE, sort_dir=sort_dir)
    assert sync(simulator, settings, database, paging=paging).all_ok
    simulator.world.vanish(project_id, truly_gone)
    simulator.clock.advance(30)
    now = simulator.clock.now()
    order = [
        job.async_job_id
        for job in simulator.world.list_jobs(project_id, now, sort_dir=sort_dir)  # type: ignore[arg-type]
    ]
    leaver, skipped = order[1], order[PAGE]
    moved = False

    def clock() -> datetime:
        nonlocal moved
        if not moved and simulator.app.stats.requests >= 1:  # page 0 has been answered
            moved = True
            simulator.world.vanish(project_id, leaver)
            oldest = min(j.create_time for j in simulator.world.list_jobs(project_id, now))
            simulator.world.add_job(
                project_id, create_time=now - 1 if sort_dir == "asc" else oldest - 1
            )
            if lookups_fail:  # lookups ask for offset 0; the listing is past it
                simulator.faults.script(
                    ScriptedFault(status=503, project_id=project_id, offset=0, times=99)
                )
        return simulator.now()

    simulator.app.stats.reset()
    report = run_sync(settings, database, retry=QUICK_RETRY, paging=paging, clock=clock)

    run = report.projects[0].run
    listing_pages = [r for r in simulator.app.stats.log if r.limit == PAGE]
    assert len({r.offset for r in listing_pages}) == len(listing_pages), "one settled pass"
    assert ids(database, gone=True) & set(visible(simulator, project_id)) == set()
    if lookups_fail:
        assert run.outcome == "incomplete" and "could not confirm missing jobs" in (run.error or "")
        assert run.gone_jobs == 0 and ids(database, gone=True) == set()
    else:
        assert run.outcome == "ok", run.error
        assert last_seen(database)[skipped] == simulator.now(), "found by id, so observed"
        assert ids(database, gone=True) == {truly_gone}, "only what the API confirmed absent"
    assert_history_invariants(database)


def test_a_new_job_skipped_while_another_arrives_in_the_count_s_second_is_listed_again(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """As above, but the job that arrives was created in the second the pass began
    (its Date's), and the job skipped is new to the history, so no lookup by id can
    find it. The arrival may be newer than the count, so it does not stand in for a
    job the pass did not see: the project is listed again, and the skipped job lands.
    (Counting it, the sync said ok without the skipped job.)"""
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 12)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=PAGE)
    now = simulator.clock.now()
    order = [j.async_job_id for j in simulator.world.list_jobs(project_id, now, sort_dir="asc")]
    leaver, skipped = order[1], order[PAGE]
    moved = False

    def clock() -> datetime:
        nonlocal moved
        if not moved and simulator.app.stats.requests >= 1:  # page 0 has been answered
            moved = True
            simulator.world.vanish(project_id, leaver)
            simulator.world.add_job(project_id, create_time=now)
        return simulator.now()

    report = run_sync(settings, database, retry=QUICK_RETRY, clock=clock)

    run = report.projects[0].run
    assert run.outcome == "ok", run.error
    assert skipped in ids(database, gone=False)
    assert set(order) - {leaver} <= ids(database, gone=False)
    # Two passes of four pages (offsets 0 to 12: the count, then the look for more).
    assert run.requests == 8 and [r.offset for r in simulator.app.stats.log] == [0, 4, 8, 12] * 2


@pytest.mark.parametrize("sort_dir", [None, *DIRECTIONS])
def test_pages_are_asked_for_in_the_configured_direction_oldest_first_by_default(
    sort_dir: str | None,
) -> None:
    """What makes the tests above cover both directions: the client sends it."""
    asked: list[str | None] = []

    def api(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("sort_dir"))
        return httpx.Response(200, json={"total_count": 0, "jobs": []})

    async def main() -> None:
        paging = PagingPolicy(page_size=PAGE, sort_dir=sort_dir or PagingPolicy.sort_dir)
        transport = httpx.MockTransport(api)
        async with DrsClient(paging=paging, transport=transport) as client:
            await list_project(client, ProjectTarget("a" * 32, "https://drs.example.com"))

    asyncio.run(main())
    assert asked == [sort_dir or "asc"]
