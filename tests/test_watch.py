"""The watch (drs_pipeline.watch): rounds against the simulator over loopback HTTP,
merged into a real DuckDB file between real syncs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from drs_pipeline.config import ConfigError, Settings, embedded_simulator_settings
from drs_pipeline.drs import statuses
from drs_pipeline.simulator.faults import ScriptedFault
from drs_pipeline.simulator.model import ANCHOR_2026
from drs_pipeline.warehouse.marts import build_marts
from drs_pipeline.warehouse.store import Warehouse
from drs_pipeline.warehouse.target import claim_target
from drs_pipeline.watch import WatchReport, run_watch

from .helpers import (
    QUICK_RETRY,
    Simulator,
    assert_history_invariants,
    query,
    settings_for,
    sync,
)

REQUEST_ID = "5f2c0e1d9b8a47c6a3e4d5f60718293a"


def watch(simulator: Simulator, settings: Settings, database: Path) -> WatchReport:
    """One real round, observing time on the simulator's clock."""
    return run_watch(settings, database, clock=simulator.now, retry=QUICK_RETRY)


def intervals(database: Path, job_id: str) -> list[tuple[str, datetime, datetime | None]]:
    return query(
        database,
        "SELECT status, valid_from, valid_to FROM drs.async_job_history "
        "WHERE async_job_id = ? ORDER BY valid_from",
        [job_id],
    )


def current(database: Path, job_id: str) -> tuple[str, datetime, datetime, bool]:
    """A job's status, status_since, last_seen_at and is_gone."""
    ((row),) = query(
        database,
        "SELECT status, status_since, last_seen_at, is_gone FROM drs.async_jobs "
        "WHERE async_job_id = ?",
        [job_id],
    )
    return row


def sync_run_count(database: Path) -> int:
    ((count,),) = query(database, "SELECT count(*) FROM drs.sync_runs")
    return int(count)


def test_the_watch_sees_a_validating_job_change_between_two_syncs(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """The job's validating interval closes at the watch's observation, not at the next
    sync's; a job still validating is observed at the watch's time; a job in no
    watched status is not asked for; a job the history does not hold yet is left to
    the next sync; and no sync_runs row is written."""
    project_id = simulator.project_ids[0]
    world = simulator.world
    passed, waiting, committed = (world.add_job(project_id).async_job_id for _ in range(3))
    world.set_status(project_id, committed, statuses.COMMIT_SUCCESS)
    settings = settings_for(simulator, tmp_path, [project_id])
    synced_at = simulator.now()
    assert sync(simulator, settings, database).all_ok

    simulator.clock.advance(20)
    world.set_status(project_id, passed, statuses.VALIDATE_SUCCESS)
    arrived = world.add_job(project_id).async_job_id
    simulator.clock.advance(5)
    watched_at = simulator.now()
    report = watch(simulator, settings, database)

    (project,) = report.projects
    assert (project.outcome, project.error) == ("ok", None)
    # Listed: the job still validating (and the new one, left); found by id: the one
    # that passed.
    assert (project.jobs_observed, project.looked_up, project.not_found) == (2, 1, 0)
    assert (project.changed_jobs, project.new_jobs_left) == (1, 1)
    # One listing (one watched status) and one look-up.
    assert project.requests == 2
    assert intervals(database, passed) == [
        (statuses.VALIDATING, synced_at, watched_at),
        (statuses.VALIDATE_SUCCESS, watched_at, None),
    ]
    assert current(database, passed) == (statuses.VALIDATE_SUCCESS, watched_at, watched_at, False)
    # The bound the watch sharpens: the last observation still validating.
    assert current(database, waiting) == (statuses.VALIDATING, synced_at, watched_at, False)
    assert query(database, "SELECT * FROM drs.async_jobs WHERE async_job_id = ?", [arrived]) == []
    assert current(database, committed)[2] == synced_at
    assert sync_run_count(database) == 1
    assert_history_invariants(database)

    # The next sync finds the change already recorded, and the new job.
    simulator.clock.advance(300)
    synced_again_at = simulator.now()
    again = sync(simulator, settings, database)
    assert (again.projects[0].run.changed_jobs, again.projects[0].run.new_jobs) == (0, 1)
    assert current(database, arrived)[:2] == (statuses.VALIDATING, synced_again_at)
    assert intervals(database, passed)[0] == (statuses.VALIDATING, synced_at, watched_at)
    assert sync_run_count(database) == 2
    assert_history_invariants(database)


@pytest.mark.parametrize("answer", ["empty list", "400 DRS.10000010"])
def test_a_job_the_watch_cannot_find_by_id_is_not_marked_gone(
    simulator: Simulator, tmp_path: Path, database: Path, answer: str
) -> None:
    project_id = simulator.project_ids[0]
    job_id = simulator.world.add_job(project_id).async_job_id
    settings = settings_for(simulator, tmp_path, [project_id])
    synced_at = simulator.now()
    sync(simulator, settings, database)

    simulator.clock.advance(30)
    simulator.world.vanish(project_id, job_id)
    simulator.faults.unknown_id_error = answer == "400 DRS.10000010"
    report = watch(simulator, settings, database)

    (project,) = report.projects
    assert (project.outcome, project.looked_up, project.not_found) == ("ok", 1, 1)
    assert (project.jobs_observed, project.changed_jobs) == (0, 0)
    assert intervals(database, job_id) == [(statuses.VALIDATING, synced_at, None)]
    assert current(database, job_id) == (statuses.VALIDATING, synced_at, synced_at, False)
    assert sync_run_count(database) == 1


def test_a_server_that_ignores_the_status_filter_still_merges_correctly(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Its answer lists jobs of every status: each record is a true observation."""
    project_id = simulator.project_ids[0]
    world = simulator.world
    passed, committed = (world.add_job(project_id).async_job_id for _ in range(2))
    world.set_status(project_id, committed, statuses.COMMIT_SUCCESS)
    settings = settings_for(simulator, tmp_path, [project_id])
    synced_at = simulator.now()
    sync(simulator, settings, database)

    simulator.clock.advance(15)
    world.set_status(project_id, passed, statuses.VALIDATE_FAILED)
    now = simulator.clock.now()
    everything = [world.get_job(project_id, j).record_at(now) for j in (passed, committed)]
    # The whole list, whatever the filter asked for.
    simulator.faults.script(
        ScriptedFault(
            status=200,
            body={"total_count": 2, "jobs": everything},
            project_id=project_id,
            offset=0,
        )
    )
    watched_at = simulator.now()
    report = watch(simulator, settings, database)

    (project,) = report.projects
    assert simulator.faults.pending() == 0
    # The job that failed validation was in the answer: no look-up needed.
    assert (project.outcome, project.jobs_observed, project.looked_up) == ("ok", 2, 0)
    assert project.changed_jobs == 1
    assert intervals(database, passed) == [
        (statuses.VALIDATING, synced_at, watched_at),
        (statuses.VALIDATE_FAILED, watched_at, None),
    ]
    assert current(database, committed) == (statuses.COMMIT_SUCCESS, synced_at, watched_at, False)
    assert_history_invariants(database)


def test_a_project_whose_listing_fails_is_reported_and_the_others_land(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    good, refused = simulator.project_ids[:2]
    world = simulator.world
    good_job = world.add_job(good).async_job_id
    refused_job = world.add_job(refused).async_job_id
    settings = settings_for(simulator, tmp_path, [good, refused])
    synced_at = simulator.now()
    sync(simulator, settings, database)

    simulator.clock.advance(10)
    world.set_status(good, good_job, statuses.VALIDATE_SUCCESS)
    world.set_status(refused, refused_job, statuses.VALIDATE_SUCCESS)
    simulator.faults.script(
        ScriptedFault(
            status=403,
            body={"error_code": "DRS.M00261", "error_msg": "Invalid project ID."},
            headers={"X-Request-Id": REQUEST_ID},
            project_id=refused,
        )
    )
    watched_at = simulator.now()
    report = watch(simulator, settings, database)

    results = {p.project_id: p for p in report.projects}
    assert results[good].outcome == "ok" and results[good].changed_jobs == 1
    failed = results[refused]
    assert (failed.outcome, failed.error_code, failed.request_id) == (
        "failed",
        "DRS.M00261",
        REQUEST_ID,
    )
    assert failed.error == (
        f"project {refused}, listing status={statuses.VALIDATING}, page offset 0: "
        f"HTTP 403 DRS.M00261: Invalid project ID. (X-Request-Id {REQUEST_ID})"
    )
    assert report.failed == (failed,)
    assert current(database, good_job)[:2] == (statuses.VALIDATE_SUCCESS, watched_at)
    # Nothing of the failed project was written.
    assert current(database, refused_job) == (statuses.VALIDATING, synced_at, synced_at, False)
    assert sync_run_count(database) == 2


def test_look_ups_are_bounded_by_max_absence_checks_and_the_next_round_asks_for_the_rest(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    world = simulator.world
    jobs = [world.add_job(project_id).async_job_id for _ in range(3)]
    settings = settings_for(simulator, tmp_path, [project_id], max_absence_checks=2)
    sync(simulator, settings, database)

    simulator.clock.advance(10)
    for job_id in jobs:
        world.set_status(project_id, job_id, statuses.VALIDATE_SUCCESS)
    first = watch(simulator, settings, database).projects[0]
    assert (first.outcome, first.looked_up, first.changed_jobs) == ("incomplete", 2, 2)
    assert first.error == (
        "3 watched jobs were not listed, 2 asked for by id (max_absence_checks 2); "
        "the next rounds ask for the rest"
    )

    simulator.clock.advance(10)
    second = watch(simulator, settings, database).projects[0]
    # The one left, and only it: it is the only job still validating in the history.
    assert (second.outcome, second.looked_up, second.changed_jobs) == ("ok", 1, 1)
    statuses_now = query(database, "SELECT DISTINCT status FROM drs.async_jobs")
    assert statuses_now == [(statuses.VALIDATE_SUCCESS,)]
    assert_history_invariants(database)


def test_the_database_is_not_held_while_the_round_waits_for_the_api(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """A sync in another process may take the file while a round's requests are in
    flight: the round holds it only to read what to watch and then to merge."""
    project_id = simulator.project_ids[0]
    job_id = simulator.world.add_job(project_id).async_job_id
    settings = settings_for(simulator, tmp_path, [project_id])
    sync(simulator, settings, database)
    simulator.clock.advance(10)
    simulator.world.set_status(project_id, job_id, statuses.VALIDATE_SUCCESS)
    # The listing's answer hangs for 3 s, then its connection closes (it is retried).
    simulator.faults.script(ScriptedFault(kind="stall", stall_s=3.0, project_id=project_id))
    simulator.app.stats.reset()
    reports: list[WatchReport] = []
    round_ = threading.Thread(target=lambda: reports.append(watch(simulator, settings, database)))
    round_.start()
    try:
        deadline = time.monotonic() + 10
        while simulator.app.stats.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert simulator.app.stats.by_fault["stall"] == 1
        # Another process opens the file for writing, and would fail at once if it were held.
        open_it = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
        opened = subprocess.run(
            [sys.executable, "-c", open_it, str(database)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        round_.join(timeout=60)
    assert opened.returncode == 0, opened.stderr
    (report,) = reports
    assert (report.projects[0].outcome, report.projects[0].changed_jobs) == ("ok", 1)


def test_the_watch_refuses_a_database_of_the_other_kind_of_history(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    with Warehouse(database) as warehouse:
        claim_target(warehouse.connection, database, embedded_simulator_settings())
    settings = settings_for(simulator, tmp_path, simulator.project_ids[:1])

    with pytest.raises(ConfigError, match="holds the embedded simulator's demo history"):
        watch(simulator, settings, database)
    assert simulator.app.stats.requests == 0


def test_with_the_watch_on_validation_is_known_to_within_one_round_and_a_round_s_time(
    streaming_simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """The issue's promise: with the watch on, the validation samples of jobs that
    finished validating during the watch have high_s - low_s no larger than the watch
    interval plus one round's own time; and each bound holds the simulator's ground
    truth, give or take one request's time (an answer is stamped when it arrives). The
    generated world runs at speed 60 (a validation takes 0.5 to 10 s, a job arrives
    every 10 s per project); a sync every 20 s brings in the new jobs, a round starts
    every 2 s between them, and every reading of the clock during a round is 50 ms
    later than the one before (requests take time)."""
    simulator = streaming_simulator
    # A fixed moment: the same jobs move the same way on every run.
    simulator.clock.set(ANCHOR_2026 + 90 * 86400.0)
    settings = settings_for(simulator, tmp_path)

    def ticking() -> datetime:
        simulator.clock.advance(0.05)
        return simulator.now()

    every = 2.0
    watch_began = simulator.now()
    round_times = []
    for number in range(60):
        started = simulator.clock.now()
        if number % 10 == 0:
            assert sync(simulator, settings, database).all_ok
        report = run_watch(settings, database, clock=ticking, retry=QUICK_RETRY)
        assert not report.not_ok, report
        round_times.append((report.finished_at - report.started_at).total_seconds())
        # Rounds start every 2 s, as the command's and the sensor's do.
        simulator.clock.advance(started + every - simulator.clock.now())
    assert 0 < max(round_times) < every
    build_marts(
        database,
        stuck_thresholds_s={},
        as_of=simulator.now(),
        configured_projects={p.project_id: p.region for p in settings.projects},
        freshness_minutes=settings.freshness_minutes,
    )

    ended = query(
        database,
        "SELECT project_id, s.async_job_id, s.low_s, s.high_s, t.not_before, t.not_after "
        "FROM drs.duration_samples AS s JOIN drs.status_transitions AS t "
        "USING (project_id, async_job_id) "
        "WHERE s.metric = 'validation' AND t.from_status = ? AND t.not_before >= ? "
        # Jobs seen validating from the start: one first seen further on was validated
        # before any watch or sync saw it.
        "AND (SELECT f.to_status FROM drs.status_transitions AS f "
        "     WHERE f.project_id = s.project_id AND f.async_job_id = s.async_job_id "
        "       AND f.from_status IS NULL) = t.from_status "
        "QUALIFY t.not_after = min(t.not_after) OVER (PARTITION BY s.async_job_id)",
        [statuses.VALIDATING, watch_began],
    )
    assert len(ended) >= 5, "too few validations ended during the watch to show anything"
    for project_id, job_id, low_s, high_s, not_before, not_after in ended:
        assert high_s - low_s <= every + max(round_times), job_id
        # The samples' end is the transition's, and the true change lies within it.
        assert high_s - low_s == pytest.approx((not_after - not_before).total_seconds())
        # The server answered before the answer was stamped (not_before), by at most
        # that request's time, which a round's bounds.
        timeline = simulator.world.get_job(project_id, job_id).timeline
        (changed_at,) = [
            at
            for (at, status), (_, before) in zip(timeline[1:], timeline, strict=False)
            if before == statuses.VALIDATING
            and status != statuses.VALIDATING
            and not_before.timestamp() - max(round_times) < at <= not_after.timestamp()
        ]
        assert changed_at
    assert sync_run_count(database) == 6 * len(settings.projects)
    assert_history_invariants(database)
