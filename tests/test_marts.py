"""The marts against hand-computed expectations, on histories built by real syncs."""

from __future__ import annotations

from pathlib import Path

import pytest

from drs_pipeline.drs.statuses import (
    COMMIT_SUCCESS,
    VALIDATE_FAILED,
    VALIDATE_SUCCESS,
    VALIDATING,
)
from drs_pipeline.warehouse.marts import build_marts

from .helpers import Simulator, query, settings_for, sync

OWNER = {"domain_name": "tenant-a", "user_name": "user-1"}


@pytest.fixture
def history(simulator: Simulator, tmp_path: Path, database: Path) -> dict[str, object]:
    """Four syncs, 60 s apart, of jobs whose every move is known.

    t0 is the first sync. Job A: created t0-100, validating at t0, failed at t1,
    validating again at t2, committed at t3. B: first seen already failed
    (created t0-50), validating at t2, validated at t3. C: first seen committed.
    D: validating, gone at t1. E: validating, changes owner at t1 (the stay in
    validating is not split), failed at t2.
    """
    world = simulator.world
    project = simulator.project_ids[0]
    start = simulator.clock.now()
    ids = {}
    for name, created, status, owner in [
        ("A", start - 100, VALIDATING, OWNER),
        ("B", start - 50, VALIDATE_FAILED, OWNER),
        ("C", start - 30, COMMIT_SUCCESS, OWNER),
        ("D", start - 20, VALIDATING, OWNER),
        ("E", start - 10, VALIDATING, {"domain_name": "tenant-b", "user_name": "user-2"}),
    ]:
        job = world.add_job(project, create_time=created, status=status, **owner)
        ids[name] = job.async_job_id
    settings = settings_for(simulator, tmp_path, [project], page_size=2)
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
    return {"ids": ids, "start": start, "project": project}


def build(simulator: Simulator, database: Path, **thresholds_s: float) -> dict[str, int]:
    return build_marts(
        database,
        stuck_thresholds_s=thresholds_s or {VALIDATE_SUCCESS: 3600.0},
        as_of=simulator.now(),
    )


def test_status_counts_exclude_gone_jobs(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    build(simulator, database)
    assert query(database, "FROM drs.status_counts") == [
        ("tenant-a", "user-1", VALIDATE_SUCCESS, 1),
        ("tenant-a", "user-1", COMMIT_SUCCESS, 2),
        ("tenant-b", "user-3", VALIDATE_FAILED, 1),
    ]
    by_project = query(
        database,
        "SELECT project_id, region, sum(jobs) FROM drs.status_counts_by_project GROUP BY ALL",
    )
    assert by_project == [(history["project"], "cn-south-2", 4)]


def test_durations_match_hand_computed_values(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    build(simulator, database)
    rows = query(
        database,
        "SELECT domain_name, user_name, metric, jobs, mean_s, p50_s, p90_s, max_s "
        "FROM drs.job_durations ORDER BY ALL",
    )
    assert rows == [
        # Dwell: A validating t0..t1, failed t1..t2, validating t2..t3; B failed
        # t0..t2, validating t2..t3. Syncs are 60 s apart.
        ("tenant-a", "user-1", "dwell:ASYNC_JOB_VALIDATE_FAILED", 2, 90.0, 90.0, 114.0, 120.0),
        ("tenant-a", "user-1", "dwell:ASYNC_JOB_VALIDATING", 3, 60.0, 60.0, 60.0, 60.0),
        # A: created t0-100, committed first seen at t3 = t0+180.
        ("tenant-a", "user-1", "time_to_commit", 1, 280.0, 280.0, 280.0, 280.0),
        # A: created t0-100, first seen not validating at t1 = t0+60. D never left
        # validating before it was gone; B and C were first seen past validation.
        ("tenant-a", "user-1", "validation", 1, 160.0, 160.0, 160.0, 160.0),
        # E: validating t0..t2 across an owner change (one stay, 120 s); grouped
        # under its current owner.
        ("tenant-b", "user-3", "dwell:ASYNC_JOB_VALIDATING", 1, 120.0, 120.0, 120.0, 120.0),
        ("tenant-b", "user-3", "validation", 1, 130.0, 130.0, 130.0, 130.0),
    ]
    samples = query(
        database,
        "SELECT count(*), count(DISTINCT async_job_id) FROM drs.duration_samples",
    )
    assert samples == [(9, 3)]
    assert query(
        database,
        "SELECT sum(jobs) FROM drs.job_durations_by_project WHERE project_id = ?",
        [history["project"]],
    ) == [(9,)]


def test_stuck_jobs_use_configured_thresholds(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    ids = history["ids"]
    assert isinstance(ids, dict)
    # B validated at t3; as of now (t3 + 60 s) it has waited 60 s for a commit.
    build(simulator, database, **{VALIDATE_SUCCESS: 30.0, VALIDATE_FAILED: 3600.0})
    stuck = query(
        database, "SELECT async_job_id, status, stuck_for_s, threshold_s FROM drs.stuck_jobs"
    )
    assert stuck == [(ids["B"], VALIDATE_SUCCESS, 60.0, 30.0)]
    build(simulator, database, **{VALIDATE_SUCCESS: 90.0})
    assert query(database, "SELECT count(*) FROM drs.stuck_jobs") == [(0,)]
    simulator.clock.advance(3600)
    build(simulator, database, **{VALIDATE_SUCCESS: 90.0, VALIDATE_FAILED: 3600.0})
    stuck_ids = {row[0] for row in query(database, "SELECT async_job_id FROM drs.stuck_jobs")}
    assert stuck_ids == {ids["B"], ids["E"]}


def test_marts_rebuild_whole_and_are_idempotent(
    simulator: Simulator, database: Path, history: dict[str, object]
) -> None:
    first = build(simulator, database)
    snapshot = query(database, "FROM drs.job_durations ORDER BY ALL")
    second = build(simulator, database)
    assert first == second
    assert query(database, "FROM drs.job_durations ORDER BY ALL") == snapshot


def test_marts_on_an_empty_database(tmp_path: Path, simulator: Simulator) -> None:
    counts = build(simulator, tmp_path / "empty.duckdb")
    assert counts and set(counts.values()) == {0}
