"""Matrix rows 1 and 2: 429 storms, and 5xx bursts, resets, timeouts and stalls.

tests/test_retries.py proves each fault once on one listing (the client alone).
Here the faults hit every page of several projects in one whole sync (list,
normalize, merge into a real DuckDB file), and persistent ones show that a
project fails cleanly after the retry budget while the others land.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from drs_pipeline.drs import statuses
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.simulator import ScriptedFault

from ..helpers import Simulator, assert_history_invariants, settings_for, sync
from .helpers import RecordingSleep, add_jobs, ids, project_rows, sync_with

RETRY = RetryPolicy(max_attempts=4, initial_delay_s=0.2, max_delay_s=1.0, max_total_wait_s=10.0)
PAGE = 5


def page_offsets(jobs: int) -> list[int]:
    """Offsets a listing of ``jobs`` asks for: every full page, then the one after."""
    return list(range(0, jobs + 1, PAGE)) if jobs % PAGE == 0 else list(range(0, jobs, PAGE))


def two_projects(simulator: Simulator) -> tuple[str, str, dict[str, list[str]]]:
    a, b = simulator.project_ids[:2]
    return a, b, {a: add_jobs(simulator, a, 30), b: add_jobs(simulator, b, 12)}


def assert_landed_once(database: Path, expected: dict[str, list[str]]) -> None:
    for project_id, job_ids in expected.items():
        assert ids(database, project_id) == set(job_ids)
    assert_history_invariants(database)  # includes "no job stored twice"


# -- 429 ------------------------------------------------------------------------------------

# Our own backoff, for 429s without a usable hint: 0.05 s then 0.1 s, each +-50 % jitter.
BACKOFF = (0.025, 0.15)


def retry_after_headers() -> dict[str, tuple[dict[str, str], tuple[float, float]]]:
    """Every form of Retry-After, and the wait each must produce: distinct ranges, so the
    recorded waits of one sync say which header each followed."""
    now = datetime.now(UTC)
    return {
        "seconds": ({"Retry-After": "3"}, (3.0, 3.0)),
        "fraction": ({"Retry-After": "0.75"}, (0.75, 0.75)),
        # Whole seconds on the wire, and read when the 429 arrives (on a busy machine,
        # a while after this): 10 s ahead is a wait of 5 s to 10 s.
        "http-date": (
            {"Retry-After": format_datetime(now + timedelta(seconds=10), usegmt=True)},
            (5.0, 10.0),
        ),
        "past-date": (
            {"Retry-After": format_datetime(now - timedelta(seconds=30), usegmt=True)},
            BACKOFF,
        ),
        "zero": ({"Retry-After": "0"}, BACKOFF),  # "no hint", as docs/sync.md says
        "garbage": ({"Retry-After": "soon"}, BACKOFF),
        "absent": ({}, BACKOFF),
    }


def test_429_storm_on_every_page_completes_and_each_wait_follows_its_header(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Every page of both projects is throttled twice; each page of the first project
    carries another form of Retry-After."""
    a, b, expected = two_projects(simulator)
    forms = retry_after_headers()
    offsets = page_offsets(len(expected[a]))
    assert len(offsets) == len(forms) == 7
    storm = [
        ScriptedFault(status=429, headers=headers, project_id=a, offset=offset, times=2)
        for offset, (headers, _) in zip(offsets, forms.values(), strict=True)
    ] + [
        ScriptedFault(status=429, project_id=b, offset=offset, times=2)
        for offset in page_offsets(len(expected[b]))
    ]
    simulator.faults.script(*storm)
    sleep = RecordingSleep()
    settings = settings_for(simulator, tmp_path, [a, b], page_size=PAGE)
    retry = RetryPolicy(max_attempts=4, initial_delay_s=0.05, max_delay_s=1.0)

    report = sync_with(simulator, settings, database, retry=retry, sleep=sleep)

    assert report.all_ok, [p.run.error for p in report.projects]
    assert_landed_once(database, expected)
    assert simulator.faults.pending() == 0, "every page was throttled twice"
    assert simulator.app.stats.by_status[429] == 2 * len(storm) == len(sleep.delays) == 20
    waits = sorted(sleep.delays)
    ranges = [bounds for _, bounds in forms.values()] + [BACKOFF] * 3  # b's pages: no header
    expected_waits = sorted(bound for bounds in ranges for bound in (bounds, bounds))
    for wait, (low, high) in zip(waits, expected_waits, strict=True):
        assert low <= wait <= high, (waits, expected_waits)
    # Bounded: each request waited at most its two hinted (or backed-off) waits.
    assert sum(waits) <= sum(2 * high for _, high in ranges)


def test_a_429_storm_that_never_lifts_fails_the_project_after_the_wait_budget(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Real waits this time: the client sleeps what Retry-After says, gives up when the
    next wait would pass its budget, and the other project lands meanwhile."""
    a, b, expected = two_projects(simulator)
    settings = settings_for(simulator, tmp_path, [a, b], page_size=PAGE)
    assert sync(simulator, settings, database).all_ok
    before = project_rows(database, a)
    simulator.world.set_status(a, expected[a][0], statuses.COMMIT_SUCCESS)
    simulator.clock.advance(60)
    simulator.faults.script(
        ScriptedFault(status=429, headers={"Retry-After": "0.5"}, project_id=a, offset=5, times=99)
    )
    budget = RetryPolicy(max_attempts=10, initial_delay_s=0.01, max_total_wait_s=1.2)

    started = time.monotonic()
    report = sync(simulator, settings, database, retry=budget)
    elapsed = time.monotonic() - started

    results = {r.run.project_id: r for r in report.projects}
    failed = results[a]
    error = failed.run.error or ""
    assert failed.run.outcome == "failed" and failed.error_code == "APIGW.0308"
    for part in ("page offset 5", "HTTP 429", "X-Request-Id", "after 3 attempts"):
        assert part in error, (part, error)
    assert failed.request_id and failed.request_id in error
    # Two waits of 0.5 s were honoured; a third would have passed the 1.2 s budget.
    assert 1.0 <= elapsed < 1.2 + 2.0
    throttled = [r for r in simulator.app.stats.log if r.project_id == a and r.status == 429]
    assert len(throttled) == 3
    assert project_rows(database, a) == before, "nothing of the failed project was written"
    assert results[b].run.outcome == "ok"
    assert_history_invariants(database)


# -- 5xx, resets, timeouts, stalls -------------------------------------------------------------


def test_bursts_of_5xx_resets_and_stalls_on_many_pages_are_retried_and_all_lands_once(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    a, b, expected = two_projects(simulator)
    bursts = [
        ScriptedFault(status=500, project_id=a, offset=0, times=2),
        ScriptedFault(status=502, project_id=a, offset=5),
        ScriptedFault(kind="drop", project_id=a, offset=5),
        ScriptedFault(status=503, project_id=a, offset=10, times=3),
        ScriptedFault(kind="stall", stall_s=5, project_id=a, offset=15),
        ScriptedFault(kind="drop", project_id=a, offset=20, times=2),
        ScriptedFault(status=503, project_id=a, offset=30),
        ScriptedFault(kind="drop", project_id=b, offset=0),
        ScriptedFault(kind="stall", stall_s=5, project_id=b, offset=5),
        ScriptedFault(status=503, project_id=b, offset=5),
        ScriptedFault(status=500, project_id=b, offset=10, times=2),
    ]
    injected = sum(f.times for f in bursts)  # counted now: each counts down as it is used
    simulator.faults.script(*bursts)
    sleep = RecordingSleep()
    settings = settings_for(simulator, tmp_path, [a, b], page_size=PAGE)
    retry = RetryPolicy(max_attempts=5, initial_delay_s=0.01, max_delay_s=0.05)

    report = sync_with(simulator, settings, database, retry=retry, sleep=sleep, timeout=0.5)

    assert report.all_ok, [p.run.error for p in report.projects]
    assert_landed_once(database, expected)
    assert simulator.faults.pending() == 0
    assert len(sleep.delays) == injected == 16
    by_fault = simulator.app.stats.by_fault
    assert (by_fault["drop"], by_fault["stall"]) == (4, 2)


def test_faults_that_persist_fail_only_their_project_after_the_bound_and_write_nothing(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Three projects each hit by a fault that never stops (on page 5, after page 0 was
    fine), the fourth healthy: the three fail naming page and reason, after exactly the
    allowed attempts, with nothing of theirs written; the fourth lands."""
    good, *bad = simulator.project_ids
    persistent = {
        bad[0]: (ScriptedFault(status=503, times=99), "HTTP 503 APIGW.0601"),
        bad[1]: (ScriptedFault(kind="drop", times=99), "transport error (RemoteProtocolError"),
        bad[2]: (ScriptedFault(kind="stall", stall_s=5, times=99), "timed out (ReadTimeout)"),
    }
    jobs = {project_id: add_jobs(simulator, project_id, 12) for project_id in simulator.project_ids}
    settings = settings_for(simulator, tmp_path, page_size=PAGE)
    assert sync(simulator, settings, database).all_ok
    before = {project_id: project_rows(database, project_id) for project_id in bad}
    # A sync that got through would write: a transition, a gone job and a new one.
    for project_id, job_ids in jobs.items():
        simulator.world.set_status(project_id, job_ids[1], statuses.VALIDATE_FAILED)
        simulator.world.vanish(project_id, job_ids[2])
        job_ids += add_jobs(simulator, project_id, 1)
    simulator.clock.advance(60)
    for project_id, (fault, _) in persistent.items():
        fault.project_id, fault.offset = project_id, 5
        simulator.faults.script(fault)
    sleep = RecordingSleep()
    retry = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05)

    report = sync_with(simulator, settings, database, retry=retry, sleep=sleep, timeout=0.3)

    results = {r.run.project_id: r for r in report.projects}
    for project_id, (_, reason) in persistent.items():
        error = results[project_id].run.error or ""
        assert results[project_id].run.outcome == "failed"
        assert f"project {project_id}, page offset 5: {reason}" in error, error
        assert "after 3 attempts" in error
        assert project_rows(database, project_id) == before[project_id], "nothing written"
    assert len(sleep.delays) == 3 * 2, "each retried up to the bound, then given up"
    assert results[good].run.outcome == "ok"
    assert results[good].run.changed_jobs == 1 and results[good].run.gone_jobs == 1
    assert ids(database, good, gone=False) == set(jobs[good]) - {jobs[good][2]}
    assert_history_invariants(database)


def test_an_api_that_never_answers_in_time_fails_every_project_cleanly(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    a, b, _ = two_projects(simulator)
    simulator.faults.latency_s = 1.0  # before any byte of the response
    settings = settings_for(simulator, tmp_path, [a, b], page_size=PAGE)
    retry = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05)

    started = time.monotonic()
    report = sync_with(simulator, settings, database, retry=retry, timeout=0.2)
    elapsed = time.monotonic() - started

    for result in report.projects:
        error = result.run.error or ""
        assert result.run.outcome == "failed", error
        assert "page offset 0: timed out (ReadTimeout)" in error and "after 3 attempts" in error
    # Three attempts of 0.2 s each; waiting for the server would take 3 x 1 s.
    assert elapsed < 2.8, "bounded by the client's timeouts, not by the server"
    assert ids(database) == set()
    simulator.faults.latency_s = 0.0
