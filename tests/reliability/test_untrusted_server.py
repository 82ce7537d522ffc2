"""Servers that behave as the DRS documentation allows but does not describe.

Each test syncs over HTTP on loopback against the simulator with one of its
switches for what the real API leaves open (drs-api.md, "What the documentation
does not promise"), and asserts the outcome, the request counts (the
simulator's log and ``drs.sync_runs``) and that no live job is ever marked gone.
"""

from __future__ import annotations

import re
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest

from drs_pipeline.config import Settings
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.simulator import ScriptedFault, WorldSettings
from drs_pipeline.sync import SyncReport, run_sync

from ..helpers import (
    QUICK_RETRY,
    Simulator,
    assert_history_invariants,
    query,
    settings_for,
    start_simulator,
    sync,
)
from .helpers import add_jobs, ids, visible


def run_of(report: SyncReport) -> tuple[str, str | None, int, int]:
    (project,) = report.projects
    run = project.run
    return run.outcome, run.error, run.pages, run.gone_jobs


def synced_once(
    simulator: Simulator, tmp_path: Path, database: Path, jobs: int, **keys: object
) -> tuple[str, list[str], Settings]:
    """A project of ``jobs`` scripted jobs, its settings (``keys`` in drs.yaml), and
    a first sync of it, ok, into ``database``."""
    project_id = simulator.project_ids[0]
    job_ids = add_jobs(simulator, project_id, jobs)
    settings = settings_for(simulator, tmp_path, [project_id], **keys)
    assert sync(simulator, settings, database).all_ok
    return project_id, job_ids, settings


def next_sync(simulator: Simulator) -> None:
    """Ten seconds on, with the request log emptied: what the next sync sends is its own."""
    simulator.app.stats.reset()
    simulator.clock.advance(10)


def requests_of(simulator: Simulator, project_id: str) -> int:
    return sum(1 for r in simulator.app.stats.log if r.project_id == project_id)


def stored_requests(database: Path, sync_id: str) -> int:
    ((requests,),) = query(
        database, "SELECT requests FROM drs.sync_runs WHERE sync_id = ?", [sync_id]
    )
    return int(requests)


# -- 1. pages shorter than asked ----------------------------------------------------------


@pytest.mark.parametrize(
    ("page_size", "requests"),
    # 350 jobs under a cap of 100: what a page size of 100 needs (4), whatever is asked
    # above it; below it, what the smaller size needs (7, and the look for more after
    # a full last page).
    [(1000, 4), (100, 4), (50, 8)],
    ids=["above-the-cap", "at-the-cap", "below-the-cap"],
)
def test_a_server_that_caps_its_pages_is_listed_completely_every_run(
    simulator: Simulator, tmp_path: Path, database: Path, page_size: int, requests: int
) -> None:
    project_id = simulator.project_ids[0]
    job_ids = add_jobs(simulator, project_id, 350)
    simulator.faults.max_page = 100
    settings = settings_for(simulator, tmp_path, [project_id], page_size=page_size)
    for _ in range(2):
        next_sync(simulator)

        report = sync(simulator, settings, database)

        assert run_of(report)[:3] == ("ok", None, requests)
        assert requests_of(simulator, project_id) == requests
        assert stored_requests(database, report.sync_id) == requests
        asked = sorted(r.offset or 0 for r in simulator.app.stats.log)
        assert asked == [min(page_size, 100) * k for k in range(requests)]
    assert ids(database, gone=False) == set(job_ids)


# -- 2. ties in create_time, and a list moving while it is paged ---------------------------


# Clock starts at which a sync used to call a listing complete while a job listed
# throughout was missing from it (in the first, second and third round), because
# jobs that arrived during the listing were counted against the count it began with.
@pytest.mark.parametrize("start", [1_796_100_004, 1_796_100_038, 1_796_100_058])
def test_three_syncs_with_drift_and_random_ties_lose_nothing_and_mark_nothing_falsely_gone(
    tmp_path: Path, database: Path, start: int
) -> None:
    """Half the jobs share their second with the one before, tie groups come back in
    a new order on every request, and the list moves under the pager."""
    server, simulator = start_simulator(WorldSettings(seed=13, speed=60.0, tie_share=0.5))
    # A fixed world, and one request at a time: concurrent requests draw from the
    # simulator's random switches in an order that changes from run to run.
    simulator.clock.set(start)
    with server:
        simulator.faults.random_ties = True
        settings = settings_for(
            simulator, tmp_path, simulator.project_ids[:2], page_size=25, max_concurrency=1
        )
        assert sync(simulator, settings, database).all_ok
        for _ in range(3):
            simulator.clock.advance(60)
            before = {pid: set(visible(simulator, pid)) for pid in simulator.project_ids[:2]}
            stored_before = {pid: ids(database, pid, gone=False) for pid in before}
            simulator.faults.drift_rate = 0.05

            report = sync(simulator, settings, database)

            simulator.faults.drift_rate = 0.0
            assert [p.run.outcome for p in report.projects] == ["ok", "ok"], [
                p.run.error for p in report.projects
            ]
            assert_history_invariants(database)  # every job stored once
            for project_id, listed_before in before.items():
                listed_after = set(visible(simulator, project_id))
                # Nothing falsely gone, nothing lost that was listed throughout.
                assert ids(database, project_id, gone=True) & listed_after == set()
                assert listed_before & listed_after <= ids(database, project_id, gone=False)
                # And what had left before the sync began is marked gone.
                assert stored_before[project_id] - listed_before <= ids(
                    database, project_id, gone=True
                )
        assert simulator.app.stats.by_fault["drift"] > 0, "the list really moved"


# -- 3. answers that must not be believed --------------------------------------------------


def test_one_empty_listing_is_a_glitch_listed_again_and_nothing_is_marked_gone(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id, job_ids, settings = synced_once(simulator, tmp_path, database, 250, page_size=100)
    simulator.faults.empty_first_listing = True
    next_sync(simulator)

    report = sync(simulator, settings, database)

    # The empty answer, then the listing again (3 pages), and no look-up by id.
    assert run_of(report) == ("ok", None, 4, 0)
    assert requests_of(simulator, project_id) == 4
    assert stored_requests(database, report.sync_id) == 4
    assert ids(database, gone=False) == set(job_ids)


def test_the_count_of_an_empty_listing_does_not_complete_the_listing_asked_again(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """The empty answer (a count of 0) is a glitch, so the project is listed again,
    and that listing is judged by its own count: between its page 0 and the rest, a
    job of page 0 leaves, so the rows shift and a new job is never seen. Its count
    is not covered and the project is incomplete, rather than ok without that job."""
    project_id = simulator.project_ids[0]
    now = simulator.clock.now()
    # Two seconds apart, so that the new job created between them falls fifth.
    known = [
        simulator.world.add_job(project_id, create_time=now - 24 + 2 * i).async_job_id
        for i in range(12)
    ]
    settings = settings_for(simulator, tmp_path, [project_id], page_size=4)
    assert sync(simulator, settings, database).all_ok
    new = simulator.world.add_job(project_id, create_time=now - 24 + 7).async_job_id
    simulator.faults.empty_first_listing = True
    next_sync(simulator)

    def clock() -> datetime:
        if simulator.app.stats.requests == 2:  # page 0 of the listing asked again
            simulator.world.vanish(project_id, known[1])
        return simulator.now()

    report = run_sync(settings, database, retry=QUICK_RETRY, clock=clock)

    outcome, error, pages, gone = run_of(report)
    assert (outcome, pages, gone) == ("incomplete", 5, 0)
    assert error is not None and error.startswith(
        "listing incomplete when listed again: 12 distinct jobs seen in 2 passes, "
        "for total_count 13"
    )
    assert new not in ids(database) and ids(database, gone=True) == set()


def test_an_empty_page_in_the_middle_of_a_listing_is_a_glitch_not_the_end(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """One answer of no jobs and a count of 0 at offset 100 of 250: the pass covers
    100 of the 250 its first page counted, so the project is listed again."""
    project_id, job_ids, settings = synced_once(simulator, tmp_path, database, 250, page_size=50)
    simulator.faults.script(
        ScriptedFault(
            status=200, body={"total_count": 0, "jobs": []}, project_id=project_id, offset=100
        )
    )
    next_sync(simulator)

    report = sync(simulator, settings, database)

    outcome, error, pages, gone = run_of(report)
    assert (outcome, error, gone) == ("ok", None, 0)
    # The first pass stopped planning at the empty page; the second was whole (six
    # pages: five and the look for more).
    assert requests_of(simulator, project_id) == pages and 6 < pages <= 6 + 6
    assert ids(database, gone=False) == set(job_ids)


def test_a_listing_that_stays_short_marks_nothing_gone_past_max_gone_share(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id, job_ids, settings = synced_once(simulator, tmp_path, database, 250, page_size=100)
    simulator.faults.empty_listings = 2
    next_sync(simulator)

    report = sync(simulator, settings, database)

    assert run_of(report) == (
        "incomplete",
        "250 of the 250 present jobs (100%) were missing from two listings, more than "
        "max_gone_share (0.2): nothing marked gone; if they really left, raise "
        "max_gone_share for one sync",
        2,
        0,
    )
    assert requests_of(simulator, project_id) == 2, "no look-up by id"
    assert ids(database, gone=True) == set() and ids(database) == set(job_ids)


def test_a_server_that_ignores_the_id_filter_proves_no_absence(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """The case tried as a new user: one empty listing, a filter ignored. Before,
    999 of 1,000 live jobs were marked gone and the sync said ok."""
    project_id, job_ids, settings = synced_once(simulator, tmp_path, database, 1000, page_size=250)
    simulator.world.vanish(project_id, job_ids[0])
    simulator.faults.empty_first_listing = True
    simulator.faults.ignore_id_filter = True
    next_sync(simulator)

    report = sync(simulator, settings, database)

    outcome, error, pages, gone = run_of(report)
    assert (outcome, pages, gone) == ("incomplete", 5, 0)
    assert error is not None
    assert error.startswith(
        f"the async_job_id filter was ignored: asked for job {job_ids[0]}, the answer "
        "listed 1 job(s) of total_count 999"
    )
    # The empty answer, the listing again (4 pages), one look-up by id and two controls.
    assert requests_of(simulator, project_id) == 8
    assert stored_requests(database, report.sync_id) == 8
    assert ids(database, gone=True) == set()


def test_the_documented_error_for_an_unknown_id_proves_absence(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id, job_ids, settings = synced_once(simulator, tmp_path, database, 30, page_size=10)
    simulator.world.vanish(project_id, job_ids[5])
    simulator.faults.unknown_id_error = True
    next_sync(simulator)

    report = sync(simulator, settings, database)

    assert run_of(report) == ("ok", None, 3, 1)
    lookups = [r for r in simulator.app.stats.log if r.status == 400]
    # Asked twice, beside two controls that were found.
    assert len(lookups) == 2 and requests_of(simulator, project_id) == 3 + 2 + 2
    assert ids(database, gone=True) == {job_ids[5]}


def test_look_ups_by_id_are_bounded_per_sync_and_the_rest_wait_for_the_next(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id, job_ids, settings = synced_once(
        simulator, tmp_path, database, 40, page_size=20, max_absence_checks=6
    )
    left = sorted(job_ids[:5])
    for job_id in left:
        simulator.world.vanish(project_id, job_id)
    outcomes = []
    for _ in range(3):
        next_sync(simulator)
        report = sync(simulator, settings, database)
        outcome, error, pages, gone = run_of(report)
        outcomes.append((outcome, gone, requests_of(simulator, project_id) - pages))
    # Six requests settle two jobs a sync (two answers each, two controls).
    assert outcomes == [("incomplete", 2, 6), ("incomplete", 2, 6), ("ok", 1, 4)]
    assert error is None and ids(database, gone=True) == set(left)
    first_error = query(
        database, "SELECT error FROM drs.sync_runs WHERE outcome = 'incomplete' ORDER BY started_at"
    )[0][0]
    assert first_error == (
        "5 jobs missing from the listing, 2 asked for by id (max_absence_checks 6 settles 2 "
        "a sync: two answers each, and two controls); the rest are asked for by the next syncs"
    )


def test_a_count_that_is_never_met_lands_what_was_seen_as_incomplete(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id, job_ids, settings = synced_once(simulator, tmp_path, database, 30, page_size=10)
    simulator.world.vanish(project_id, job_ids[0])
    simulator.faults.total_count = 45
    next_sync(simulator)

    report = sync(simulator, settings, database)

    outcome, error, _, gone = run_of(report)
    assert (outcome, gone) == ("incomplete", 0)
    assert error is not None and error.startswith("listing incomplete: 29 distinct jobs seen in 4")
    assert error.endswith("for total_count 45")
    # Bounded: four passes (three, and the last after trying to narrow it, which one
    # status, tenant and user cannot), each of the five pages the count implies and the
    # short page's rest (offset 29) asked for again.
    assert requests_of(simulator, project_id) == 4 * 6
    assert ids(database, gone=True) == set() and ids(database, gone=False) == set(job_ids)


def peak_memory_of(action: object) -> tuple[object, int]:
    """What ``action()`` returns, and the peak of the memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        result = action()  # type: ignore[operator]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_count_of_a_trillion_fails_at_once_in_bounded_memory(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 30)
    simulator.faults.total_count = 10**12
    settings = settings_for(simulator, tmp_path, [project_id], page_size=10)

    report, peak = peak_memory_of(lambda: sync(simulator, settings, database))

    assert isinstance(report, SyncReport)
    assert requests_of(simulator, project_id) == 1
    outcome, error, pages, gone = run_of(report)
    assert (outcome, pages, gone) == ("failed", 0, 0)
    assert error is not None and re.fullmatch(
        f"project {project_id}, page offset 0: total_count 1000000000000 is more than "
        r"max_jobs_per_project \(10000000\): refusing to list it \(X-Request-Id \w+\)",
        error,
    )
    assert peak < 50 * 2**20


def test_a_server_that_ignores_offset_fails_at_once_in_bounded_memory(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 300)
    simulator.faults.ignore_offset = True
    settings = settings_for(simulator, tmp_path, [project_id], page_size=20, max_concurrency=4)

    report, peak = peak_memory_of(lambda: sync(simulator, settings, database))

    assert isinstance(report, SyncReport)
    outcome, error, _, _ = run_of(report)
    assert outcome == "failed" and error is not None
    assert "the server ignores offset: this page repeats the 20 jobs of offset 0" in error
    # Page 0 and at most one window (2 x max_concurrency) of the others.
    assert requests_of(simulator, project_id) <= 1 + 8
    assert peak < 50 * 2**20
    assert ids(database) == set()


def test_a_response_that_trickles_is_cut_by_the_request_deadline(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 5)
    simulator.faults.trickle_s = 0.2
    settings = settings_for(simulator, tmp_path, [project_id], request_timeout_s=1)
    started = time.monotonic()

    report = sync(simulator, settings, database, retry=RetryPolicy(max_attempts=2))

    assert run_of(report) == (
        "failed",
        f"project {project_id}, page offset 0: no complete response from {simulator.url} "
        "within request_timeout_s (1 s) after 2 attempts",
        0,
        0,
    )
    assert requests_of(simulator, project_id) == 2
    assert time.monotonic() - started < 60, "bounded, far from the hang it was"


def test_a_sync_that_outlives_its_deadline_fails_naming_the_project_and_page(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 5)
    simulator.faults.trickle_s = 0.2
    settings = settings_for(
        simulator, tmp_path, [project_id], request_timeout_s=60, sync_timeout_s=1
    )

    report = sync(simulator, settings, database, retry=QUICK_RETRY)

    assert run_of(report) == (
        "failed",
        f"project {project_id}, page offset 0: the sync's deadline passed "
        "(sync_timeout_s = 1 s) before this request was answered",
        0,
        0,
    )
    assert requests_of(simulator, project_id) == 1


# -- 4. endpoints ------------------------------------------------------------------------


def test_an_endpoint_that_does_not_serve_v5_is_its_own_clear_failure(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    simulator.faults.script(
        ScriptedFault(
            status=404,
            body={
                "error_code": "APIGW.0101",
                "error_msg": "The API does not exist or has not been published in the environment",
            },
            times=9,
        )
    )
    settings = settings_for(simulator, tmp_path, [project_id])

    report = sync(simulator, settings, database)

    (project,) = report.projects
    assert project.run.outcome == "failed" and project.error_code == "APIGW.0101"
    assert project.run.error == (
        f"project {project_id}, page offset 0: the DRS v5 API is not served at "
        f"{simulator.url} (HTTP 404 APIGW.0101: The API does not exist or has not been "
        "published in the environment); check the project's region and endpoint"
        f" (X-Request-Id {project.request_id})"
    )
    assert requests_of(simulator, project_id) == 1
