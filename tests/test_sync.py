"""Syncs against the simulator over loopback HTTP into a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from drs_pipeline.drs import statuses
from drs_pipeline.drs.client import PagingPolicy
from drs_pipeline.warehouse.merge import SyncRunRow
from drs_pipeline.warehouse.store import Warehouse

from .helpers import (
    Simulator,
    assert_history_invariants,
    query,
    settings_for,
    sync,
)


def add_jobs(
    simulator: Simulator, project_id: str, count: int, *, step_s: float = 1.0
) -> list[str]:
    """``count`` jobs created ``step_s`` apart, oldest first, ending now."""
    now = simulator.clock.now()
    return [
        simulator.world.add_job(
            project_id,
            create_time=now - (count - i) * step_s,
            time_format="epoch_ms" if i % 3 == 0 else "iso",
            domain_name=f"tenant-{i % 2}",
            user_name=f"user-{i % 3}",
        ).async_job_id
        for i in range(count)
    ]


@pytest.mark.parametrize("page_size", [1, 7, 100, 1000])
def test_every_page_of_every_project_lands(
    simulator: Simulator, tmp_path: Path, database: Path, page_size: int
) -> None:
    first, second = simulator.project_ids[:2]
    expected = {first: add_jobs(simulator, first, 150), second: add_jobs(simulator, second, 23)}
    settings = settings_for(simulator, tmp_path, [first, second], page_size=page_size)

    report = sync(simulator, settings, database)

    assert report.all_ok
    for project_id, ids in expected.items():
        stored = query(
            database, "SELECT async_job_id FROM drs.async_jobs WHERE project_id = ?", [project_id]
        )
        assert sorted(r[0] for r in stored) == sorted(ids)
    runs = {r.run.project_id: r.run for r in report.projects}
    assert runs[first].pages == 150 // page_size + 1
    assert runs[first].jobs_seen == runs[first].total_count == 150
    assert runs[first].new_jobs == 150 and runs[first].changed_jobs == 0
    # Both create_time formats land as the same instant.
    assert query(database, "SELECT count(*) FROM drs.async_jobs WHERE create_time IS NULL") == [
        (0,)
    ]
    assert_history_invariants(database)


def test_requests_carry_the_documented_parameters_and_headers(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 5)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=2)
    assert sync(simulator, settings, database).all_ok
    logged = [r for r in simulator.app.stats.log if r.project_id == project_id]
    assert sorted(r.offset for r in logged) == [0, 2, 4]
    assert {r.limit for r in logged} == {2}
    assert {r.status for r in logged} == {200}


def test_second_sync_with_nothing_changed_adds_nothing(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 40)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=10)
    sync(simulator, settings, database)
    before = query(database, "SELECT count(*) FROM drs.async_job_history")

    simulator.clock.advance(60)
    report = sync(simulator, settings, database)

    run = report.projects[0].run
    assert (run.new_jobs, run.changed_jobs, run.gone_jobs) == (0, 0, 0)
    assert query(database, "SELECT count(*) FROM drs.async_job_history") == before
    # ...but it did see them again.
    assert query(
        database,
        "SELECT count(*) FROM drs.async_jobs WHERE last_seen_at = ?",
        [simulator.now()],
    ) == [(40,)]


def test_transitions_vanishing_and_returning_jobs(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    world = simulator.world
    project_id = simulator.project_ids[0]
    a, b, c = add_jobs(simulator, project_id, 3)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=2)
    times = []

    def step(seconds: float = 60) -> None:
        simulator.clock.advance(seconds)
        times.append(simulator.now())
        assert sync(simulator, settings, database).all_ok
        assert_history_invariants(database)

    step()  # t0: a, b, c validating
    world.set_status(project_id, a, statuses.VALIDATE_FAILED)
    world.set_owner(project_id, b, user_name="someone-else")
    world.vanish(project_id, c)
    step()  # t1: a failed, b new owner, c gone
    world.set_status(project_id, a, statuses.VALIDATING)
    world.restore(project_id, c)
    step()  # t2: a validating again, c back
    world.set_status(project_id, a, statuses.COMMIT_SUCCESS)
    step()  # t3: a committed
    step()  # t4: nothing changed
    t0, t1, t2, t3, _ = times

    history = query(
        database,
        "SELECT async_job_id, status, user_name, valid_from, valid_to "
        "FROM drs.async_job_history ORDER BY async_job_id, valid_from",
    )
    by_job: dict[str, list[tuple]] = {}
    for job_id, *rest in history:
        by_job.setdefault(job_id, []).append(tuple(rest))
    assert [(s, f, t) for s, _, f, t in by_job[a]] == [
        (statuses.VALIDATING, t0, t1),
        (statuses.VALIDATE_FAILED, t1, t2),
        (statuses.VALIDATING, t2, t3),
        (statuses.COMMIT_SUCCESS, t3, None),
    ]
    assert [(u, f, t) for _, u, f, t in by_job[b]][-2:] == [
        (by_job[b][0][1], t0, t1),
        ("someone-else", t1, None),
    ]
    assert [(f, t) for _, _, f, t in by_job[c]] == [(t0, t1), (t2, None)]
    jobs = dict(
        (row[0], row[1:])
        for row in query(
            database,
            "SELECT async_job_id, status, status_since, is_gone, gone_at, first_seen_at "
            "FROM drs.async_jobs",
        )
    )
    assert jobs[a] == (statuses.COMMIT_SUCCESS, t3, False, None, t0)
    assert jobs[c][2:4] == (False, None)
    runs = query(
        database, "SELECT new_jobs, changed_jobs, gone_jobs FROM drs.sync_runs ORDER BY started_at"
    )
    assert runs == [(3, 0, 0), (0, 2, 1), (0, 2, 0), (0, 1, 0), (0, 0, 0)]


def test_gone_only_after_the_api_confirms_it(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    ids = add_jobs(simulator, project_id, 6)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=3)
    sync(simulator, settings, database)
    simulator.world.vanish(project_id, ids[0])
    simulator.clock.advance(10)

    report = sync(simulator, settings, database)

    assert report.projects[0].run.gone_jobs == 1
    lookups = [r for r in simulator.app.stats.log if r.limit == 1]
    # The missing job twice (two answers make it gone), and two jobs just listed as
    # controls.
    assert len(lookups) == 4, "the missing job was asked for by id before being marked gone"
    gone = query(database, "SELECT async_job_id, gone_at FROM drs.async_jobs WHERE is_gone")
    assert gone == [(ids[0], simulator.now())]


def test_only_a_project_with_present_jobs_looks_for_missing_ones(
    simulator: Simulator, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = simulator.project_ids[0]
    ids = add_jobs(simulator, project_id, 4)
    # Every job leaves below: more than the default share a listing may take away.
    settings = settings_for(simulator, tmp_path, [project_id], page_size=3, max_gone_share=1)
    looked_up: list[str] = []
    missing_job_ids = Warehouse.missing_job_ids

    def counted(warehouse: Warehouse, project_id: str, seen_ids: pd.Series) -> set[str]:
        looked_up.append(project_id)
        return missing_job_ids(warehouse, project_id, seen_ids)

    monkeypatch.setattr(Warehouse, "missing_job_ids", counted)

    def step() -> SyncRunRow:
        simulator.clock.advance(10)
        report = sync(simulator, settings, database)
        assert report.all_ok
        assert_history_invariants(database)
        return report.projects[0].run

    assert step().new_jobs == 4
    assert looked_up == []  # its first sync: nothing stored could have left
    for job_id in ids:
        simulator.world.vanish(project_id, job_id)
    assert step().gone_jobs == 4
    assert looked_up == [project_id]
    simulator.world.restore(project_id, ids[0])
    assert step().changed_jobs == 1  # came back
    assert looked_up == [project_id]  # every job was gone: none to miss
    assert query(database, "SELECT async_job_id FROM drs.async_jobs WHERE NOT is_gone") == [
        (ids[0],)
    ]


def test_rejected_records_are_kept_with_reasons_and_good_ones_land(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    world = simulator.world
    project_id = simulator.project_ids[0]
    good = add_jobs(simulator, project_id, 3)
    base = {
        "status": statuses.VALIDATING,
        "domain_name": "tenant",
        "user_name": "user",
        "create_time": "2026-11-01T00:00:00Z",
    }
    bad = {
        "no user": {**base, "async_job_id": "bad-1", "user_name": None},
        "bad time": {**base, "async_job_id": "bad-2", "create_time": "yesterday"},
        "naive time": {**base, "async_job_id": "bad-3", "create_time": "2026-11-01T00:00:00"},
        "number status": {**base, "async_job_id": "bad-4", "status": 3},
        "huge": {**base, "async_job_id": "bad-5", "domain_name": "x" * 10_000},
    }
    for raw in bad.values():
        world.add_job(project_id, async_job_id=str(raw["async_job_id"]), raw=raw)
    world.add_job(
        project_id,
        async_job_id="ok-unicode",
        raw={
            **base,
            "async_job_id": "ok-unicode",
            "user_name": "用户-ü",
            "create_time": "1721897321317",
        },
    )
    settings = settings_for(simulator, tmp_path, [project_id], page_size=4)

    report = sync(simulator, settings, database)

    run = report.projects[0].run
    assert run.outcome == "ok" and run.rejected_records == len(bad)
    stored = {r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs")}
    assert stored == {*good, "ok-unicode"}
    rejected = query(database, "SELECT record, reason FROM drs.rejected_records ORDER BY record")
    reasons = {record: reason for record, reason in rejected}
    assert len(rejected) == len(bad)

    def reason_of(job_id: str) -> str:
        return next(r for rec, r in reasons.items() if f'"{job_id}"' in rec)

    assert "user_name is missing" in reason_of("bad-1")
    assert "create_time" in reason_of("bad-2") and "yesterday" in reason_of("bad-2")
    assert "create_time" in reason_of("bad-3")
    assert "status is not a string" in reason_of("bad-4")
    assert "over 256 characters" in reason_of("bad-5")
    assert all(r.startswith("page offset ") for r in reasons.values())
    assert (
        query(
            database,
            "SELECT user_name, create_time FROM drs.async_jobs WHERE async_job_id = 'ok-unicode'",
        )[0][0]
        == "用户-ü"
    )
    # A rejected job is still a job the API listed: it is never marked gone for it.
    simulator.clock.advance(5)
    assert sync(simulator, settings, database).projects[0].run.gone_jobs == 0


def test_one_failing_project_does_not_stop_the_others(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    good = simulator.project_ids[0]
    unknown = "f" * 32
    add_jobs(simulator, good, 12)
    settings = settings_for(simulator, tmp_path, [unknown, good], page_size=5)

    report = sync(simulator, settings, database)

    results = {r.run.project_id: r for r in report.projects}
    assert results[good].run.outcome == "ok" and results[good].run.new_jobs == 12
    failed = results[unknown]
    assert failed.run.outcome == "failed" and failed.error_code == "DRS.M00261"
    assert failed.request_id and failed.request_id in (failed.run.error or "")
    assert "HTTP 403" in (failed.run.error or "") and "page offset 0" in (failed.run.error or "")
    # Not retried: a 403 does not get better by waiting.
    assert sum(1 for r in simulator.app.stats.log if r.project_id == unknown) == 1
    assert query(
        database,
        "SELECT outcome, error IS NOT NULL, jobs_seen FROM drs.sync_runs WHERE project_id = ?",
        [unknown],
    ) == [("failed", True, 0)]
    assert query(
        database, "SELECT count(*) FROM drs.async_jobs WHERE project_id = ?", [unknown]
    ) == [(0,)]


def test_wrong_token_is_a_clear_failure(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 2)
    settings = settings_for(simulator, tmp_path, [project_id])
    simulator.app.tokens.clear()
    simulator.app.tokens.add("another-token")

    report = sync(simulator, settings, database)

    result = report.projects[0]
    assert result.run.outcome == "failed"
    assert result.error_code == "APIGW.0301" and "HTTP 401" in (result.run.error or "")
    assert simulator.token not in (result.run.error or "")
    assert simulator.app.stats.requests == 1


def test_drift_between_pages_loses_nothing_and_invents_nothing(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 60)
    # The storm below really removes a third of the jobs between two syncs: more
    # than the default share a listing may take away at once.
    settings = settings_for(simulator, tmp_path, [project_id], page_size=5, max_gone_share=0.5)
    sync(simulator, settings, database)
    before = set(
        r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs WHERE NOT is_gone")
    )
    # Every page request from now on creates a job and/or deletes one.
    simulator.faults.drift_rate = 1.0
    for _ in range(3):
        simulator.clock.advance(30)
        report = sync(simulator, settings, database, paging=PagingPolicy(page_size=5))
        assert_history_invariants(database)
        run = report.projects[0].run
        assert run.outcome in ("ok", "incomplete")
        if run.outcome == "incomplete":
            assert run.gone_jobs == 0, "an unsettled listing marks nothing gone"
    simulator.faults.drift_rate = 0.0
    assert simulator.app.stats.by_fault["drift"] > 10, "the list really moved"
    visible_now = {
        job.async_job_id
        for job in simulator.world.list_jobs(project_id, simulator.clock.now(), sort_dir="asc")
    }
    falsely_gone = visible_now & {
        r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs WHERE is_gone")
    }
    assert falsely_gone == set()
    # A settled sync after the storm converges on exactly what the API lists. No sync
    # during it could prove its listing complete (every page moved the list), so none
    # marked anything gone: this one is told to expect more than max_gone_share gone,
    # as its error would ask, and to ask for all of them by id.
    simulator.clock.advance(30)
    settings = settings_for(
        simulator,
        tmp_path,
        [project_id],
        page_size=5,
        max_gone_share=1.0,
        max_absence_checks=1000,
    )
    assert sync(simulator, settings, database).all_ok
    present = {
        r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs WHERE NOT is_gone")
    }
    assert present == visible_now
    assert before - visible_now <= {
        r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs WHERE is_gone")
    }
    assert_history_invariants(database)


def test_a_listing_moving_during_every_pass_completes_and_marks_only_what_left(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Completeness is decided on the ids of every pass, not on one pass agreeing with
    itself: a list that moves while each pass pages it still ends ok. One request at
    a time, so that the drift is the same on every run: with other draws the listing
    may end incomplete (a job left before any pass since a count saw it, so no count
    can be proven), never ok without a job listed throughout."""
    project_id = simulator.project_ids[0]
    ids = add_jobs(simulator, project_id, 40)
    settings = settings_for(simulator, tmp_path, [project_id], page_size=4, max_concurrency=1)
    sync(simulator, settings, database)
    simulator.world.vanish(project_id, ids[0])
    simulator.faults.drift_rate = 0.3
    simulator.clock.advance(30)

    report = sync(simulator, settings, database)

    simulator.faults.drift_rate = 0.0
    assert simulator.app.stats.by_fault["drift"] >= 3, "the list really moved"
    run = report.projects[0].run
    assert run.outcome == "ok", run.error
    listed = {
        job.async_job_id
        for job in simulator.world.list_jobs(project_id, simulator.clock.now(), sort_dir="asc")
    }
    gone = {r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs WHERE is_gone")}
    assert ids[0] in gone and gone & listed == set()
    # Every job of the first sync still listed is stored and not gone; the stored
    # jobs that are not listed left during this sync, after it saw them.
    present = {
        r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs WHERE NOT is_gone")
    }
    assert set(ids) & listed <= present
    now = simulator.clock.now()
    assert {
        job_id
        for job_id in present - listed
        if simulator.world.get_job(project_id, job_id).vanish_at != now
    } == set()
    assert_history_invariants(database)


def test_streaming_world_over_many_syncs_keeps_the_invariants(
    streaming_simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    simulator = streaming_simulator
    settings = settings_for(simulator, tmp_path, page_size=50)
    for _ in range(6):
        report = sync(simulator, settings, database)
        assert report.all_ok, [p.run.error for p in report.projects]
        assert_history_invariants(database)
        simulator.clock.advance(45)  # 45 minutes of world time at speed 60
    changed, gone = query(database, "SELECT sum(changed_jobs), sum(gone_jobs) FROM drs.sync_runs")[
        0
    ]
    assert changed > 0 and gone > 0, "the world moved: statuses changed and jobs left"
    present = {
        r[0] for r in query(database, "SELECT async_job_id FROM drs.async_jobs WHERE NOT is_gone")
    }
    listed = {
        job.async_job_id
        for project_id in simulator.project_ids
        for job in simulator.world.list_jobs(project_id, simulator.clock.now() - 45, sort_dir="asc")
    }
    assert present == listed
