"""The marts against hand-computed expectations, on histories built by real syncs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from drs_pipeline.config import DEFAULT_FRESHNESS_MINUTES, Settings
from drs_pipeline.drs.statuses import (
    COMMIT_SUCCESS,
    VALIDATE_FAILED,
    VALIDATE_SUCCESS,
    VALIDATING,
)
from drs_pipeline.simulator import ScriptedFault
from drs_pipeline.warehouse.health import mart_violations
from drs_pipeline.warehouse.marts import build_marts

from .helpers import Simulator, query, settings_for, sync

OWNER = {"domain_name": "tenant-a", "user_name": "user-1"}


@pytest.fixture
def history(simulator: Simulator, tmp_path: Path, database: Path) -> dict[str, object]:
    """A sync at t0-120, then four syncs, 60 s apart, of jobs whose every move is known.

    t0 is the second sync. Job A: created t0-100, validating at t0, failed at t1,
    validating again at t2, committed at t3. B: first seen already failed
    (created t0-50), validating at t2, validated at t3. C: first seen committed.
    D: validating, gone at t1. E: validating, changes owner at t1 (the stay in
    validating is not split), failed at t2. F: created t0-1000, before the history
    began, and validating throughout: it may be in its second round already.
    """
    world = simulator.world
    project = simulator.project_ids[0]
    start = simulator.clock.now()
    # No Date header, so no clock correction: create_time stays on the whole second
    # these hand-computed figures assume (the correction is tested against the truth,
    # in test_durations_truth).
    simulator.faults.no_date_header = True
    ids = {}
    for name, created, status, owner in [
        ("A", start - 100, VALIDATING, OWNER),
        ("B", start - 50, VALIDATE_FAILED, OWNER),
        ("C", start - 30, COMMIT_SUCCESS, OWNER),
        ("D", start - 20, VALIDATING, OWNER),
        ("E", start - 10, VALIDATING, {"domain_name": "tenant-b", "user_name": "user-2"}),
        ("F", start - 1000, VALIDATING, OWNER),
    ]:
        job = world.add_job(project, create_time=created, status=status, **owner)
        ids[name] = job.async_job_id
    settings = settings_for(simulator, tmp_path, [project], page_size=2)
    # The history begins: only F exists yet.
    simulator.clock.set(start - 120)
    assert sync(simulator, settings, database).all_ok
    simulator.clock.set(start)
    moves = [
        [],
        [("A", VALIDATE_FAILED), ("D", None), ("E", "owner")],
        [("A", VALIDATING), ("B", VALIDATING), ("E", VALIDATE_FAILED)],
        [("A", COMMIT_SUCCESS), ("B", VALIDATE_SUCCESS)],
    ]
    for step in moves:
        for name, move in step:
            if move is None:
                world.vanish(project, ids[name])
            elif move == "owner":
                world.set_owner(project, ids[name], user_name="user-3")
            else:
                world.set_status(project, ids[name], move)
        assert sync(simulator, settings, database).all_ok
        simulator.clock.advance(60)
    return {"ids": ids, "start": start, "project": project, "settings": settings}


def at(seconds: float) -> datetime:
    """A simulator clock reading as the marts return it."""
    return datetime.fromtimestamp(seconds, UTC)


def build(
    simulator: Simulator, database: Path, settings: Settings | None = None, **thresholds_s: float
) -> dict[str, int]:
    """The marts as of the simulator's now, for the projects and freshness of ``settings``
    (by default every project of the simulator, as write_config configures them)."""
    configured = (
        {p.project_id: p.region for p in settings.projects}
        if settings
        else dict.fromkeys(simulator.project_ids, "cn-south-2")
    )
    return build_marts(
        database,
        stuck_thresholds_s=thresholds_s or {VALIDATE_SUCCESS: 3600.0},
        as_of=simulator.now(),
        configured_projects=configured,
        freshness_minutes=settings.freshness_minutes if settings else DEFAULT_FRESHNESS_MINUTES,
    )


def test_status_counts_exclude_gone_jobs(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    start = history["start"]
    assert isinstance(start, float)
    build(simulator, database, history["settings"])
    # As of the last sync (t3); 60 s later, well within freshness_minutes (15).
    last_sync = at(start + 180)
    assert query(database, "FROM drs.status_counts") == [
        ("tenant-a", "user-1", VALIDATING, 1, last_sync, False),
        ("tenant-a", "user-1", VALIDATE_SUCCESS, 1, last_sync, False),
        ("tenant-a", "user-1", COMMIT_SUCCESS, 2, last_sync, False),
        ("tenant-b", "user-3", VALIDATE_FAILED, 1, last_sync, False),
    ]
    by_project = query(
        database,
        "SELECT project_id, region, as_of, stale, sum(jobs) "
        "FROM drs.status_counts_by_project GROUP BY ALL",
    )
    assert by_project == [(history["project"], "cn-south-2", last_sync, False, 5)]


def test_transitions_are_bounded_by_the_observations_around_them(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    build(simulator, database)
    ids, t0 = history["ids"], history["start"]
    assert isinstance(ids, dict) and isinstance(t0, float)
    names = {job_id: name for name, job_id in ids.items()}
    rows = query(
        database,
        "SELECT async_job_id, user_name, from_status, to_status, "
        "epoch(not_before) - ?, epoch(not_after) - ? "
        "FROM drs.status_transitions ORDER BY async_job_id, not_after",
        [t0, t0],
    )
    by_job: dict[str, list[tuple[object, ...]]] = {}
    for job_id, *rest in rows:
        by_job.setdefault(names[job_id], []).append(tuple(rest))
    assert by_job == {
        # Created t0-100, first seen validating: its first row starts at create_time.
        "A": [
            ("user-1", None, VALIDATING, -100.0, 0.0),
            ("user-1", VALIDATING, VALIDATE_FAILED, 0.0, 60.0),
            ("user-1", VALIDATE_FAILED, VALIDATING, 60.0, 120.0),
            ("user-1", VALIDATING, COMMIT_SUCCESS, 120.0, 180.0),
        ],
        # First seen already failed: when it failed is unknown.
        "B": [
            ("user-1", None, VALIDATE_FAILED, None, 0.0),
            ("user-1", VALIDATE_FAILED, VALIDATING, 60.0, 120.0),
            ("user-1", VALIDATING, VALIDATE_SUCCESS, 120.0, 180.0),
        ],
        "C": [("user-1", None, COMMIT_SUCCESS, None, 0.0)],
        "D": [("user-1", None, VALIDATING, -20.0, 0.0)],
        # The owner change at t1 is not a transition; the failure is, under the owner
        # of that time, after the last observation in validating (t1).
        "E": [
            ("user-2", None, VALIDATING, -10.0, 0.0),
            ("user-3", VALIDATING, VALIDATE_FAILED, 60.0, 120.0),
        ],
        # Its create_time bounds its stay from below, though the stay may have begun
        # later (a second round): first seen validating when the history began.
        "F": [("user-1", None, VALIDATING, -1000.0, -120.0)],
    }


def test_durations_match_hand_computed_values(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    build(simulator, database)
    ids = history["ids"]
    assert isinstance(ids, dict)
    names = {job_id: name for name, job_id in ids.items()}
    samples = query(
        database,
        "SELECT async_job_id, metric, low_s, high_s, seconds FROM drs.duration_samples "
        "ORDER BY ALL",
    )
    assert sorted((names[job_id], *rest) for job_id, *rest in samples) == [
        # A: validating from its creation (t0-100) until between t0 and t1.
        ("A", "dwell:ASYNC_JOB_VALIDATE_FAILED", 0.0, 120.0, 60.0),
        ("A", "dwell:ASYNC_JOB_VALIDATING", 0.0, 120.0, 60.0),
        ("A", "dwell:ASYNC_JOB_VALIDATING", 100.0, 160.0, 130.0),
        ("A", "time_to_commit", 220.0, 280.0, 250.0),
        ("A", "validation", 100.0, 160.0, 130.0),
        # B, created t0-50 after the history began, was first seen failed at t0: it
        # failed between its creation and t0, and stayed failed until between t1 and t2.
        ("B", "dwell:ASYNC_JOB_VALIDATE_FAILED", 60.0, 170.0, 115.0),
        ("B", "dwell:ASYNC_JOB_VALIDATING", 0.0, 120.0, 60.0),
        ("B", "validation", 0.0, 50.0, 25.0),
        # C, created t0-30, was first seen committed at t0: validated and committed
        # in between. D left while validating: nothing measured.
        ("C", "time_to_commit", 0.0, 30.0, 15.0),
        ("C", "validation", 0.0, 30.0, 15.0),
        # E: validating from t0-10 until between t1 and t2, across an owner change.
        ("E", "dwell:ASYNC_JOB_VALIDATING", 70.0, 130.0, 100.0),
        ("E", "validation", 70.0, 130.0, 100.0),
    ]
    in_progress = query(
        database, "SELECT async_job_id, metric, low_s FROM drs.durations_in_progress ORDER BY ALL"
    )
    # As of the last sync, t3 = t0+180: B validated, E failed, F validating, none
    # committed.
    assert sorted((names[job_id], *rest) for job_id, *rest in in_progress) == [
        ("B", "dwell:AUTO_PARAM_VALIDATE_SUCCESS", 0.0),
        ("B", "time_to_commit", 230.0),
        ("E", "dwell:ASYNC_JOB_VALIDATE_FAILED", 60.0),
        ("E", "time_to_commit", 190.0),
        # F: not validation, whose start it may not have been seen in.
        ("F", "time_to_commit", 1180.0),
    ]
    rows = query(database, "FROM drs.job_durations ORDER BY ALL")
    assert rows == [
        # A's 60 (to within 120) and B's 115 (to within 110).
        (
            "tenant-a",
            "user-1",
            "dwell:ASYNC_JOB_VALIDATE_FAILED",
            2,
            87.5,
            87.5,
            109.5,
            115.0,
            0,
            115.0,
        ),
        # 60, 60 and 130: p90 interpolates between the two largest.
        (
            "tenant-a",
            "user-1",
            "dwell:ASYNC_JOB_VALIDATING",
            3,
            250 / 3,
            60.0,
            116.0,
            130.0,
            0,
            120.0,
        ),
        (
            "tenant-a",
            "user-1",
            "dwell:AUTO_PARAM_VALIDATE_SUCCESS",
            0,
            None,
            None,
            None,
            None,
            1,
            None,
        ),
        # A's 250 and C's 15; B and F not committed yet.
        ("tenant-a", "user-1", "time_to_commit", 2, 132.5, 132.5, 226.5, 250.0, 2, 45.0),
        # A's 130, B's 25 and C's 15.
        ("tenant-a", "user-1", "validation", 3, 170 / 3, 25.0, 109.0, 130.0, 0, 50.0),
        # E, under its current owner.
        (
            "tenant-b",
            "user-3",
            "dwell:ASYNC_JOB_VALIDATE_FAILED",
            0,
            None,
            None,
            None,
            None,
            1,
            None,
        ),
        (
            "tenant-b",
            "user-3",
            "dwell:ASYNC_JOB_VALIDATING",
            1,
            100.0,
            100.0,
            100.0,
            100.0,
            0,
            60.0,
        ),
        ("tenant-b", "user-3", "time_to_commit", 0, None, None, None, None, 1, None),
        ("tenant-b", "user-3", "validation", 1, 100.0, 100.0, 100.0, 100.0, 0, 60.0),
    ]
    assert query(
        database,
        "SELECT sum(jobs), sum(in_progress) FROM drs.job_durations_by_project WHERE project_id = ?",
        [history["project"]],
    ) == [(12, 5)]


def test_the_mart_checks_name_what_breaks_the_bounds(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    build(simulator, database)
    with duckdb.connect(str(database)) as con:
        assert mart_violations(con) == {}
        con.execute(
            "UPDATE drs.duration_samples SET low_s = -1 WHERE metric = 'time_to_commit'; "
            "UPDATE drs.status_transitions SET not_before = not_after "
            "WHERE from_status = 'ASYNC_JOB_VALIDATE_FAILED'"
        )
        broken = mart_violations(con)
    assert {name: len(rows) for name, rows in broken.items()} == {
        "transitions_out_of_order": 2,
        "durations_negative_or_inverted": 2,
    }


STUCK = (
    "SELECT async_job_id, status, status_since, stuck_for_s, age_s, threshold_s, as_of, stale "
    "FROM drs.stuck_jobs"
)


def test_stuck_jobs_use_configured_thresholds(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    ids, start, settings = history["ids"], history["start"], history["settings"]
    assert isinstance(ids, dict) and isinstance(start, float)
    # Last seen at t3 = t0 + 180 s: E validation failed since t2, B validated since t3,
    # C committed since t0. Created: E at t0 - 10, C at t0 - 30.
    build(simulator, database, settings, **{VALIDATE_SUCCESS: 30.0, VALIDATE_FAILED: 30.0})
    assert query(database, STUCK) == [
        (ids["E"], VALIDATE_FAILED, at(start + 120), 60.0, 190.0, 30.0, at(start + 180), False)
    ]
    build(simulator, database, settings, **{VALIDATE_FAILED: 60.0, COMMIT_SUCCESS: 180.0})
    assert query(database, "SELECT count(*) FROM drs.stuck_jobs") == [(0,)]
    build(simulator, database, settings, **{VALIDATE_FAILED: 59.0, COMMIT_SUCCESS: 179.0})
    assert query(database, "SELECT async_job_id, stuck_for_s FROM drs.stuck_jobs") == [
        (ids["C"], 180.0),
        (ids["E"], 60.0),
    ]


def test_stuck_for_s_does_not_grow_while_nobody_looks(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    ids, start, settings = history["ids"], history["start"], history["settings"]
    assert isinstance(ids, dict) and isinstance(start, float) and isinstance(settings, Settings)
    thresholds = {VALIDATE_SUCCESS: 30.0, VALIDATE_FAILED: 30.0}
    # An hour after the last sync (t3) without another: the same lower bound, now stale.
    simulator.clock.advance(3600)
    build(simulator, database, settings, **thresholds)
    assert query(database, STUCK) == [
        (ids["E"], VALIDATE_FAILED, at(start + 120), 60.0, 190.0, 30.0, at(start + 180), True)
    ]
    # A sync at t3 + 3660 s sees both still there: B has waited that long for its commit
    # (created at t0 - 50; E at t0 - 10).
    assert sync(simulator, settings, database).all_ok
    build(simulator, database, settings, **thresholds)
    now = start + 180 + 3660
    assert query(database, STUCK) == [
        (ids["E"], VALIDATE_FAILED, at(start + 120), 3720.0, 3850.0, 30.0, at(now), False),
        (ids["B"], VALIDATE_SUCCESS, at(start + 180), 3660.0, 3890.0, 30.0, at(now), False),
    ]


def test_marts_rebuild_whole_and_are_idempotent(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    first = build(simulator, database, history["settings"])
    snapshot = query(database, "FROM drs.job_durations ORDER BY ALL")
    second = build(simulator, database, history["settings"])
    assert first == second
    assert query(database, "FROM drs.job_durations ORDER BY ALL") == snapshot


def test_marts_on_an_empty_database(tmp_path: Path, simulator: Simulator) -> None:
    project = simulator.project_ids[0]
    settings = settings_for(simulator, tmp_path, [project])
    database = tmp_path / "empty.duckdb"
    counts = build(simulator, database, settings)
    # Only the configured project, never synced: stale, since nothing of it is current.
    assert counts.pop("project_status") == 1
    assert counts and set(counts.values()) == {0}
    assert query(database, "FROM drs.project_status") == [
        (project, "cn-south-2", True, None, None, None, True)
    ]


# -- projects that stop syncing: removed from the file, or failing -----------------------


PROJECT_STATUS = (
    "SELECT project_id, region, configured, last_ok_sync_at, last_sync_at, last_outcome, "
    "stale FROM drs.project_status"
)


def test_projects_removed_or_failing_leave_the_marts_or_go_stale(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Three projects with one validating job each, under one owner, synced ok at t0 and
    t0 + 60 s. Then ``removed`` leaves the file and ``failing`` fails every sync: at
    t0 + 120 s it is not stale yet (freshness_minutes: 5); at t0 + 420 s it is, its rows
    as of its last ok sync, and its job's stuck_for_s frozen at what that sync saw."""
    kept, removed, failing = simulator.project_ids[:3]
    t0 = simulator.clock.now()
    simulator.faults.no_date_header = True  # no clock correction: whole-second figures
    jobs = {
        project: simulator.world.add_job(project, create_time=t0 - 10, **OWNER).async_job_id
        for project in (kept, removed, failing)
    }
    every = settings_for(simulator, tmp_path, [kept, removed, failing], freshness_minutes=5)
    for _ in range(2):
        assert sync(simulator, every, database).all_ok
        simulator.clock.advance(60)
    settings = settings_for(simulator, tmp_path, [kept, failing], freshness_minutes=5)
    simulator.faults.script(ScriptedFault(status=403, project_id=failing, times=99))
    thresholds = {VALIDATING: 30.0}

    report = sync(simulator, settings, database)
    assert [p.run.outcome for p in report.projects] == ["ok", "failed"]
    build(simulator, database, settings, **thresholds)
    t1, t2 = at(t0 + 60), at(t0 + 120)
    assert query(database, PROJECT_STATUS) == sorted(
        [
            (kept, "cn-south-2", True, t2, t2, "ok", False),
            (removed, "cn-south-2", False, t1, t1, "ok", False),
            (failing, "cn-south-2", True, t1, t2, "failed", False),
        ]
    )

    simulator.clock.advance(300)
    report = sync(simulator, settings, database)
    assert [p.run.outcome for p in report.projects] == ["ok", "failed"]
    build(simulator, database, settings, **thresholds)
    t3 = at(t0 + 420)
    assert query(database, PROJECT_STATUS) == sorted(
        [
            (kept, "cn-south-2", True, t3, t3, "ok", False),
            (removed, "cn-south-2", False, t1, t1, "ok", True),
            (failing, "cn-south-2", True, t1, t3, "failed", True),
        ]
    )
    # One row for the owner's two configured projects: as of the older, and stale.
    assert query(database, "FROM drs.status_counts") == [
        ("tenant-a", "user-1", VALIDATING, 2, t1, True)
    ]
    assert query(
        database, "SELECT project_id, jobs, as_of, stale FROM drs.status_counts_by_project"
    ) == sorted([(kept, 1, t3, False), (failing, 1, t1, True)])
    assert query(
        database, "SELECT async_job_id, stuck_for_s, age_s, as_of, stale FROM drs.stuck_jobs"
    ) == [(jobs[kept], 420.0, 430.0, t3, False), (jobs[failing], 60.0, 70.0, t1, True)]


def test_a_job_first_seen_after_an_outage_is_not_measured_from_its_create_time(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Between two syncs further apart than freshness_minutes nobody watched: a job
    created then and first seen validating may already be in its second round."""
    simulator.faults.no_date_header = True
    project = simulator.project_ids[0]
    settings = settings_for(simulator, tmp_path, [project])
    start = simulator.clock.now()
    assert sync(simulator, settings, database).all_ok
    during_outage = simulator.world.add_job(project, create_time=start + 600, status=VALIDATING)
    simulator.clock.set(start + 1200)  # 20 minutes later: past freshness_minutes (15)
    assert sync(simulator, settings, database).all_ok
    watched = simulator.world.add_job(project, create_time=start + 1210, status=VALIDATING)
    simulator.clock.set(start + 1260)
    assert sync(simulator, settings, database).all_ok
    for job in (during_outage, watched):
        simulator.world.set_status(project, job.async_job_id, VALIDATE_SUCCESS)
    simulator.clock.set(start + 1320)
    assert sync(simulator, settings, database).all_ok
    build(simulator, database, settings)
    assert query(
        database,
        "SELECT async_job_id, metric, low_s, high_s FROM drs.duration_samples ORDER BY ALL",
    ) == sorted(
        [
            (watched.async_job_id, "validation", 50.0, 110.0),
            (watched.async_job_id, "dwell:ASYNC_JOB_VALIDATING", 50.0, 110.0),
        ]
    )


def test_an_owner_change_does_not_restart_the_time_stuck(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    simulator.faults.no_date_header = True
    project = simulator.project_ids[0]
    settings = settings_for(simulator, tmp_path, [project])
    t0 = simulator.clock.now()
    job = simulator.world.add_job(project, create_time=t0 - 10, status=VALIDATING, **OWNER)
    for step in range(3):
        if step == 1:
            simulator.world.set_owner(project, job.async_job_id, user_name="user-2")
        assert sync(simulator, settings, database).all_ok
        simulator.clock.advance(60)
    build(simulator, database, settings, **{VALIDATING: 30.0})
    # In validating from t0 (its first observation) to t0+120, across the change at t0+60.
    assert query(
        database, "SELECT user_name, status_since, stuck_for_s, age_s FROM drs.stuck_jobs"
    ) == [("user-2", at(t0), 120.0, 130.0)]
