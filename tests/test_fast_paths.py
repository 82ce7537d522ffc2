"""The performance paths give what the careful paths give.

* normalization's clean-project fast path (clean_pages) against its per-record
  checks, and that it steps aside on every kind of doubt;
* merging projects in one batch against merging them one by one, the merge's
  own pre-commit check, and the writer isolating a project that fails;
* the merge's steps with nothing to do skipped, against running every step;
* checkpoints without a vacuum until small row groups pile up;
* the request slots handed out by project rank;
* the simulator's page cache, which the benchmark turns on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandas.testing as pdt
import pytest

from drs_pipeline.drs.slots import PrioritySlots
from drs_pipeline.simulator import ManualClock, World, WorldSettings, build_simulator
from drs_pipeline.simulator.app import ListQuery
from drs_pipeline.simulator.model import ANCHOR_2026, default_projects
from drs_pipeline.warehouse import clean_pages, merge, normalize
from drs_pipeline.warehouse.merge import HistoryInvariantError, ProjectSync, SyncRunRow
from drs_pipeline.warehouse.normalize import Normalized, normalize_pages
from drs_pipeline.warehouse.store import Warehouse
from drs_pipeline.warehouse.writer import BatchingWriter
from tests.conftest import ObservedPage as Page

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def careful(pages: list[Page], monkeypatch: pytest.MonkeyPatch) -> Normalized:
    with monkeypatch.context() as patch:
        patch.setattr(normalize, "clean_columns", lambda pages: None)
        return normalize_pages(pages, project_id="p" * 32, region="cn-south-2")


def fast(pages: list[Page]) -> Normalized:
    assert clean_pages.clean_columns(pages) is not None, "expected the fast path"
    return normalize_pages(pages, project_id="p" * 32, region="cn-south-2")


def simulated_records(count: int, t: float) -> list[dict[str, Any]]:
    """Records as the simulator serves them: both time formats, every status."""
    settings = WorldSettings(seed=5, projects=default_projects(5, 1), arrival_interval_s=60.0)
    world = World(settings, ManualClock(t))
    project_id = settings.projects[0].project_id
    return [job.record_at(t) for job in world.list_jobs(project_id, t, sort_dir="asc")][:count]


def assert_same(a: Normalized, b: Normalized) -> None:
    pdt.assert_frame_equal(a.jobs, b.jobs)
    pdt.assert_frame_equal(a.rejected, b.rejected)


# -- normalization ------------------------------------------------------------------


def test_clean_pages_give_what_the_careful_checks_give(monkeypatch: pytest.MonkeyPatch) -> None:
    records = simulated_records(2500, ANCHOR_2026 + 40 * 86400)
    assert {len(r["create_time"]) for r in records} == {13, 20}  # epoch ms and ISO
    # Overlapping pages (the list moved), fetched out of order, two at the same time.
    pages = [
        Page(0, records[0:1000], T0 + timedelta(seconds=2)),
        Page(1000, records[900:1900], T0),
        Page(2000, records[1800:2500], T0 + timedelta(seconds=2)),
        Page(2500, [dict(r, status="LATER") for r in records[0:50]], T0 + timedelta(seconds=1)),
    ]
    out = fast(pages)
    assert_same(out, careful(pages, monkeypatch))
    assert len(out.jobs) == 2500 and out.rejected.empty


def test_many_distinct_owners_give_the_same_categoricals(monkeypatch: pytest.MonkeyPatch) -> None:
    # More tenants than an 8-bit code holds: the clean path's codes widen as pandas'.
    records = [
        dict(record, domain_name=f"tenant-{i:04d}", user_name=f"user-{i % 7}")
        for i, record in enumerate(simulated_records(400, ANCHOR_2026 + 40 * 86400))
    ]
    pages = [Page(0, records, T0)]
    out = fast(pages)
    assert_same(out, careful(pages, monkeypatch))
    assert len(out.jobs["domain_name"].cat.categories) == 400


def test_one_clean_page_and_no_page(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [Page(0, simulated_records(10, ANCHOR_2026 + 86400), T0)]
    assert_same(fast(pages), careful(pages, monkeypatch))
    empty = normalize_pages([], project_id="p" * 32, region="cn-south-2")
    assert_same(empty, careful([], monkeypatch))


GOOD = {
    "async_job_id": "0b0f8f3e-6c1c-4a8e-9d2c-5d6f7a8b9c0d",
    "status": "ASYNC_JOB_VALIDATING",
    "domain_name": "d",
    "user_name": "u",
    "create_time": "2024-07-25T08:48:41Z",
}

DOUBTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "not an object": lambda r: "text",
    "a list": lambda r: list(r.values()),
    "missing field": lambda r: {k: v for k, v in r.items() if k != "user_name"},
    "null field": lambda r: dict(r, domain_name=None),
    "number field": lambda r: dict(r, status=3),
    "list field": lambda r: dict(r, async_job_id=["x"]),
    "long field": lambda r: dict(r, user_name="u" * 257),
    "blank id": lambda r: dict(r, async_job_id=" "),
    "blank status": lambda r: dict(r, status="\t"),
    "empty time": lambda r: dict(r, create_time=""),
    "naive time": lambda r: dict(r, create_time="2024-07-25T08:48:41"),
    "fraction": lambda r: dict(r, create_time="2024-07-25T08:48:41.317Z"),
    "offset": lambda r: dict(r, create_time="2024-07-25T16:48:41+08:00"),
    "space": lambda r: dict(r, create_time="2024-07-25 08:48:41Z"),
    "30 February": lambda r: dict(r, create_time="2024-02-30T08:48:41Z"),
    "leap second": lambda r: dict(r, create_time="2016-12-31T23:59:60Z"),
    "before 2000": lambda r: dict(r, create_time="1999-12-31T23:59:59Z"),
    "from 2100": lambda r: dict(r, create_time="2100-01-01T00:00:00Z"),
    "epoch before 2000": lambda r: dict(r, create_time="1"),
    "epoch too long": lambda r: dict(r, create_time="12345678901234567"),
    "epoch with sign": lambda r: dict(r, create_time="+1721897321317"),
    "epoch in other digits": lambda r: dict(r, create_time="١٧٢١٨٩٧٣٢١٣١٧"),
    "epoch number": lambda r: dict(r, create_time=1721897321317),
    "non-ascii time": lambda r: dict(r, create_time="2024-07-25T08:48:4１Z"),
}


@pytest.mark.parametrize("doubt", sorted(DOUBTS))
def test_any_doubt_leaves_the_project_to_the_careful_checks(
    doubt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = DOUBTS[doubt](dict(GOOD, async_job_id="odd"))
    pages = [Page(0, [GOOD, odd], T0), Page(2, [dict(GOOD, async_job_id="other")], T0)]
    assert clean_pages.clean_columns(pages) is None
    assert_same(
        normalize_pages(pages, project_id="p" * 32, region="cn-south-2"),
        careful(pages, monkeypatch),
    )


def test_an_id_twice_in_a_page_is_a_doubt_but_across_pages_is_not() -> None:
    twice = [Page(0, [GOOD, dict(GOOD, status="OTHER")], T0)]
    assert clean_pages.clean_columns(twice) is None
    across = [Page(0, [GOOD], T0), Page(1, [dict(GOOD, status="NEWER")], T0 + timedelta(1))]
    assert fast(across).jobs["status"].tolist() == ["NEWER"]


# -- merging ------------------------------------------------------------------------


def snapshot(project: str, jobs: dict[str, str], at: datetime) -> Normalized:
    frame = pd.DataFrame(
        {
            "project_id": project,
            "region": "cn-south-2",
            "async_job_id": list(jobs),
            "status": list(jobs.values()),
            "domain_name": "d",
            "user_name": "u",
            "create_time": pd.Timestamp("2026-11-01", tz="UTC"),
            "observed_at": pd.Timestamp(at),
        },
        index=pd.RangeIndex(len(jobs)),
    ).astype(normalize.JOB_DTYPES)
    rejected = pd.DataFrame(columns=list(normalize.REJECTED_COLUMNS), dtype="str")
    return Normalized(frame, rejected)


def project_sync(
    sync_id: str,
    project: str,
    jobs: dict[str, str],
    at: datetime,
    gone: frozenset[str] = frozenset(),
) -> ProjectSync:
    run = SyncRunRow(sync_id, project, at, at, "ok", None, 1, len(jobs), len(jobs))
    return ProjectSync(run, snapshot(project, jobs, at), gone, at)


def rounds() -> list[list[ProjectSync]]:
    """Three syncs of three projects: new jobs, changes, a job gone and back, a stale one."""
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    t1, t2, t3 = T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)
    return [
        [
            project_sync("s1", a, {"a1": "V", "a2": "V"}, t1),
            project_sync("s1", b, {"b1": "V"}, t1),
            project_sync("s1", c, {}, t1),
        ],
        [
            project_sync("s2", a, {"a1": "OK", "a3": "V"}, t2, frozenset({"a2"})),
            project_sync("s2", b, {"b1": "V"}, t2),
            project_sync("s2", c, {"c1": "V"}, t2),
        ],
        [
            project_sync("s3", a, {"a1": "OK", "a2": "V", "a3": "FAIL"}, t3),
            # Stale: observed before what the history knows of b1.
            project_sync("s3", b, {"b1": "CHANGED"}, t1),
            project_sync("s3", c, {"c1": "V"}, t3),
        ],
    ]


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            table: con.execute(f"FROM drs.{table} ORDER BY ALL").fetchall()
            for table in ("async_jobs", "async_job_history", "sync_runs")
        }


def test_a_batch_lands_what_one_project_at_a_time_lands(tmp_path: Path) -> None:
    together, alone = tmp_path / "together.duckdb", tmp_path / "alone.duckdb"
    recorded_together, recorded_alone = [], []
    with Warehouse(together) as warehouse:
        for batch in rounds():
            recorded_together += warehouse.apply_project_syncs(batch)
    with Warehouse(alone) as warehouse:
        for batch in rounds():
            recorded_alone += [warehouse.apply_project_syncs([one])[0] for one in batch]
    assert recorded_together == recorded_alone
    assert tables(together) == tables(alone)
    counts = [(r.project_id[0], r.new_jobs, r.changed_jobs, r.gone_jobs) for r in recorded_alone]
    assert counts[3:6] == [("a", 1, 1, 1), ("b", 0, 0, 0), ("c", 1, 0, 0)]
    assert counts[6:] == [("a", 0, 2, 0), ("b", 0, 0, 0), ("c", 0, 0, 0)]


def test_steps_with_nothing_to_do_are_skipped_and_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    skipping, every_step = tmp_path / "skipping.duckdb", tmp_path / "every_step.duckdb"
    caplog.set_level(logging.DEBUG, logger=merge.__name__)
    with Warehouse(skipping) as warehouse:
        recorded = [warehouse.apply_project_syncs(batch) for batch in rounds()]
    skipped = [r.getMessage() for r in caplog.records if "merge steps skipped" in r.message]
    # Round 1 only adds jobs; round 2 changes, adds, and confirms one gone (nothing
    # came back, no owner or details changed); round 3 brings a2 back.
    assert "update_seen_jobs" in skipped[0] and "touched_history" in skipped[0]
    assert "close_changed_intervals" not in skipped[1] and "mark_gone" not in skipped[1]
    assert "update_came_back" in skipped[1] and "update_came_back" not in skipped[2]
    assert "mark_gone" in skipped[2]
    for steps in ("MERGE_STEPS", "COPY_STEPS", "CHECK_STEPS"):
        every = tuple(replace(step, runs_if=merge.always) for step in getattr(merge, steps))
        monkeypatch.setattr(merge, steps, every)
    with Warehouse(every_step) as warehouse:
        assert [warehouse.apply_project_syncs(batch) for batch in rounds()] == recorded
    assert tables(skipping) == tables(every_step)


def test_the_pre_commit_check_rolls_the_whole_batch_back(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    first = rounds()[0]
    broken = project_sync("s1", "d" * 32, {"d1": "V"}, T0)
    # A snapshot holding a job twice: normalization never hands one over, but if it
    # did, the history would get the job twice, with two open intervals.
    doubled = pd.concat([broken.normalized.jobs] * 2, ignore_index=True)
    broken = replace(broken, normalized=Normalized(doubled, broken.normalized.rejected))
    with Warehouse(path) as warehouse:
        with pytest.raises(HistoryInvariantError, match="new_job_twice"):
            warehouse.apply_project_syncs([*first, broken])
        assert warehouse.job_rows() == 0
    assert tables(path) == {"async_jobs": [], "async_job_history": [], "sync_runs": []}


def test_the_writer_lets_a_failing_project_fail_alone(tmp_path: Path) -> None:
    first = rounds()[0]
    bad = project_sync("s1", "d" * 32, {"d1": "V"}, T0)
    bad = replace(
        bad,
        normalized=Normalized(
            pd.concat([bad.normalized.jobs] * 2, ignore_index=True), bad.normalized.rejected
        ),
    )
    syncs = [*first, bad]

    async def land(warehouse: Warehouse) -> list[SyncRunRow | BaseException]:
        writer = BatchingWriter(warehouse, [s.run.project_id for s in syncs])
        return await asyncio.gather(*(writer.merge(s) for s in syncs), return_exceptions=True)

    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        results = asyncio.run(land(warehouse))
        assert [type(r).__name__ for r in results] == ["SyncRunRow"] * 3 + ["HistoryInvariantError"]
        assert warehouse.job_rows() == 3
        present = warehouse.connection.execute(
            "SELECT async_job_id FROM drs.async_jobs WHERE project_id = ? AND NOT is_gone",
            ["a" * 32],
        ).fetchall()
        assert {job_id for (job_id,) in present} == {"a1", "a2"}


def test_the_writer_merges_what_is_queued_together_once_nothing_more_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    syncs = rounds()[0]

    async def land(warehouse: Warehouse) -> None:
        original = warehouse.apply_project_syncs

        def counted(batch: list[ProjectSync]) -> list[SyncRunRow]:
            batches.append(len(batch))
            return original(batch)

        monkeypatch.setattr(warehouse, "apply_project_syncs", counted)
        # A history far larger than three times what is queued: nothing is enough to
        # merge before every project has queued or ended.
        writer = BatchingWriter(
            warehouse, [s.run.project_id for s in syncs] + ["x" * 32], history_jobs=10**6
        )
        waiting = [asyncio.ensure_future(writer.merge(s)) for s in syncs]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiting)  # "x" may still come
        writer.close_project("x" * 32)  # it will not (it failed, say)
        await asyncio.gather(*waiting)

    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        asyncio.run(land(warehouse))
    assert batches == [3]


def test_missing_jobs_are_those_present_and_not_listed(tmp_path: Path) -> None:
    first, second, _ = rounds()
    a = "a" * 32
    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        warehouse.apply_project_syncs(first)
        listed = pd.Series(["a1", "a9"], dtype="str")  # a9: new, not stored yet
        assert warehouse.missing_job_ids(a, listed) == {"a2"}
        assert warehouse.missing_job_ids(a, pd.Series([], dtype="str")) == {"a1", "a2"}
        warehouse.apply_project_syncs(second)  # a2 confirmed gone, a3 new
        assert warehouse.missing_job_ids(a, pd.Series(["a1"], dtype="str")) == {"a3"}
        assert warehouse.missing_job_ids("b" * 32, pd.Series(["b1"], dtype="str")) == set()


def test_into_an_empty_history_the_first_project_lands_without_waiting(tmp_path: Path) -> None:
    first, *others = rounds()[0]

    async def land(warehouse: Warehouse) -> None:
        writer = BatchingWriter(warehouse, [s.run.project_id for s in [first, *others]])
        # The others are still listing: the first lands all the same (a first sync
        # merges as it goes, instead of waiting for a batch to fill).
        recorded = await asyncio.wait_for(writer.merge(first), timeout=30)
        assert recorded.new_jobs == len(first.normalized.jobs)
        assert warehouse.job_rows() == len(first.normalized.jobs)
        later = [asyncio.ensure_future(writer.merge(s)) for s in others]
        for sync in others:
            writer.close_project(sync.run.project_id)
        await asyncio.gather(*later)

    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        asyncio.run(land(warehouse))
        assert warehouse.job_rows() == sum(len(s.normalized.jobs) for s in rounds()[0])


def test_small_row_groups_are_left_until_there_are_many_then_compacted(tmp_path: Path) -> None:
    # Checkpoints do not vacuum (a vacuum repacked each large insert's last row
    # group: about 1 s at the end of a cold million-job sync), so each session that
    # adds a few jobs leaves a small row group; past the allowance, a session
    # compacts them.
    path, allowance = tmp_path / "history.duckdb", 3
    opened: list[tuple[int, bool]] = []
    for n in range(7):
        with Warehouse(path, max_spare_row_groups=allowance) as warehouse:
            opened.append((warehouse.spare_row_groups(), warehouse.compacting))
            at = T0 + timedelta(minutes=n)
            jobs = {f"job{n}-{i}": "V" for i in range(50)}
            warehouse.apply_project_syncs([project_sync(f"s{n}", "a" * 32, jobs, at)])
    with Warehouse(path) as warehouse:
        assert warehouse.job_rows() == 7 * 50
        history = warehouse.connection.execute("SELECT count(*) FROM drs.async_job_history")
        assert history.fetchall() == [(7 * 50,)]
    assert opened == [
        (0, False),
        (0, False),  # the first session's rows fill one row group
        (1, False),
        (2, False),
        (3, False),
        (4, True),  # more than allowed: this session compacts them
        (0, False),
    ]


# -- request slots ------------------------------------------------------------------


def test_slots_go_to_the_lowest_rank_first_and_survive_cancellation() -> None:
    async def main() -> list[int]:
        slots = PrioritySlots(1)
        served: list[int] = []

        async def request(rank: int) -> None:
            async with slots.hold(rank):
                served.append(rank)
                await asyncio.sleep(0.001)

        async with slots.hold(0):
            tasks = [asyncio.ensure_future(request(rank)) for rank in (5, 3, 9, 1, 3)]
            await asyncio.sleep(0.01)
            tasks[2].cancel()  # rank 9 gives up while waiting
        await asyncio.gather(*tasks, return_exceptions=True)
        async with slots.hold(0):  # and nothing leaked: the slot is free again
            pass
        return served

    assert asyncio.run(main()) == [1, 3, 3, 5]


# -- the simulator's page cache (benchmarks only) ------------------------------------


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
