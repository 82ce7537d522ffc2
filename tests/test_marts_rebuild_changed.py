"""The per-job marts rebuilt for the changed jobs only equal the same marts built for every job.

After each merge the marts are built the way a run builds them (only the jobs a
merge changed, when the basis holds), and a copy of the database is built again
from scratch with the same inputs: every mart must be the same, row for row.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from drs_pipeline.simulator import WorldSettings
from drs_pipeline.simulator.model import ANCHOR_2026, default_projects
from drs_pipeline.warehouse import catalog
from drs_pipeline.warehouse.marts import CHANGED_JOBS, EVERY_JOB, build_marts
from drs_pipeline.warehouse.merge import SyncRunRow
from drs_pipeline.warehouse.normalize import JOB_DTYPES
from drs_pipeline.warehouse.store import Warehouse

from .helpers import T0, project_sync, query, rounds, settings_for, start_simulator, sync

FRESHNESS_MINUTES = 60.0


def build(database: Path, projects: list[str], as_of: datetime, **options: Any) -> None:
    build_marts(
        database,
        stuck_thresholds_s={"ASYNC_JOB_VALIDATING": 60.0},
        as_of=as_of,
        configured_projects={p: "cn-south-2" for p in projects},
        freshness_minutes=options.get("freshness_minutes", FRESHNESS_MINUTES),
    )


def last_build(database: Path) -> tuple[str, int]:
    ((rebuilt, jobs),) = query(database, "SELECT rebuilt, jobs_rebuilt FROM drs.marts_basis")
    return str(rebuilt), int(jobs)


def marts(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {
            table.name: con.execute(f"FROM drs.{table.name} ORDER BY ALL").fetchall()
            for table in catalog.MARTS
        }


def assert_same_as_built_for_every_job(
    database: Path, projects: list[str], as_of: datetime, tmp_path: Path, **options: Any
) -> None:
    copy = tmp_path / "every_job.duckdb"
    shutil.copyfile(database, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DELETE FROM drs.marts_basis")  # no basis: every job is rebuilt
    build(copy, projects, as_of, **options)
    assert last_build(copy)[0] == EVERY_JOB
    expected, built = marts(copy), marts(database)
    for table in expected:
        assert built[table] == expected[table], table


def test_each_kind_of_change_rebuilds_the_same_marts(tmp_path: Path) -> None:
    # New jobs, a change, a job gone and back, a stale observation (helpers.rounds), then
    # an owner change and a corrected create_time and region.
    database = tmp_path / "history.duckdb"
    scripted = rounds()
    a = "a" * 32
    t4 = T0 + timedelta(minutes=15)
    fourth = project_sync("s4", a, {"a1": "OK", "a2": "V", "a3": "FAIL"}, t4)
    jobs = fourth.normalized.jobs.astype({"user_name": "str", "region": "str"})
    jobs.loc[jobs["async_job_id"] == "a2", "user_name"] = "someone-else"
    jobs.loc[jobs["async_job_id"] == "a3", "create_time"] = pd.Timestamp("2026-11-02", tz="UTC")
    jobs.loc[jobs["async_job_id"] == "a1", "region"] = "cn-north-4"
    normalized = replace(fourth.normalized, jobs=jobs.astype(JOB_DTYPES))
    scripted.append([replace(fourth, normalized=normalized)])
    # And a project whose 20 jobs never change, seen in the first three syncs.
    d = "d" * 32
    for n, batch in enumerate(scripted[:3]):
        at = batch[0].run.started_at
        batch.append(project_sync(f"s{n + 1}", d, {f"d{i}": "V" for i in range(20)}, at))
    projects = sorted({s.run.project_id for batch in scripted for s in batch})
    changed = []
    for n, batch in enumerate(scripted):
        with Warehouse(database) as warehouse:
            warehouse.apply_project_syncs(batch)
        as_of = max(s.run.finished_at for s in batch) + timedelta(seconds=30)
        build(database, projects, as_of)
        changed.append(last_build(database))
        assert_same_as_built_for_every_job(database, projects, as_of, tmp_path)
        assert query(database, "SELECT count(*) FROM drs.jobs_changed_since_marts") == [(0,)], n
    # The first build has no basis; later ones rebuild the jobs each merge changed:
    # a1 changed, a2 gone, a3 and c1 new; a2 back, a3 changed, and b1: its stale
    # observation changes nothing, but that run's row, started as early as b1's first
    # observation, is one its clock reads; a1's region and a3's create_time corrected,
    # a2's owner changed.
    assert changed == [(EVERY_JOB, 23), (CHANGED_JOBS, 4), (CHANGED_JOBS, 3), (CHANGED_JOBS, 3)]


AN_HOUR_LATER = T0 + timedelta(hours=1)


def merged_and_built(tmp_path: Path) -> tuple[Path, list[str]]:
    """helpers.rounds() merged, then the marts built an hour later; the database and
    its projects."""
    database = tmp_path / "history.duckdb"
    scripted = rounds()
    for batch in scripted:
        with Warehouse(database) as warehouse:
            warehouse.apply_project_syncs(batch)
    projects = sorted({s.run.project_id for batch in scripted for s in batch})
    build(database, projects, AN_HOUR_LATER)
    return database, projects


def test_a_run_recorded_with_a_clock_stepped_back_notes_the_jobs_it_reaches(
    tmp_path: Path,
) -> None:
    # A failed project's run row, started (by a clock stepped back) before jobs already
    # first seen, with a measured offset: those jobs' clocks read it.
    database, projects = merged_and_built(tmp_path)
    as_of = AN_HOUR_LATER
    a = "a" * 32
    back = T0 + timedelta(minutes=4)  # before the second sync's first observations
    late = SyncRunRow("s-late", a, back, back, "failed", "boom", 0, 0, None)
    with Warehouse(database) as warehouse:
        warehouse.record_run(replace(late, server_clock_offset_s=40.0))
    # a3 (first seen at minute 5) is noted; a1 and a2 (minute 0) are not reached.
    noted = query(database, "SELECT async_job_id FROM drs.jobs_changed_since_marts ORDER BY 1")
    assert noted == [("a3",)]
    build(database, projects, as_of)
    assert last_build(database) == (CHANGED_JOBS, 1)
    assert_same_as_built_for_every_job(database, projects, as_of, tmp_path)


def test_jobs_added_by_a_writer_that_notes_nothing_rebuild_every_job(tmp_path: Path) -> None:
    # As an older version of this code would leave the history: a merge, no notes.
    database = tmp_path / "history.duckdb"
    first, *later = rounds()
    projects = sorted({s.run.project_id for batch in [first, *later] for s in batch})
    with Warehouse(database) as warehouse:
        warehouse.apply_project_syncs(first)
    build(database, projects, T0 + timedelta(minutes=1))
    for batch in later:
        with Warehouse(database) as warehouse:
            warehouse.apply_project_syncs(batch)
            warehouse.connection.execute("DELETE FROM drs.jobs_changed_since_marts")
    as_of = T0 + timedelta(hours=1)
    build(database, projects, as_of)
    assert last_build(database) == (EVERY_JOB, 5)
    assert_same_as_built_for_every_job(database, projects, as_of, tmp_path)


def test_another_freshness_rebuilds_every_job(tmp_path: Path) -> None:
    database, projects = merged_and_built(tmp_path)
    as_of = AN_HOUR_LATER
    build(database, projects, as_of)
    assert last_build(database) == (CHANGED_JOBS, 0)
    # seen_from_start depends on freshness: every job's clock is computed again.
    build(database, projects, as_of, freshness_minutes=5.0)
    assert last_build(database) == (EVERY_JOB, 5)
    assert_same_as_built_for_every_job(database, projects, as_of, tmp_path, freshness_minutes=5.0)


@pytest.mark.parametrize("skew_s", [0.0, 120.0], ids=["same-clock", "server-ahead"])
def test_a_busy_world_synced_and_built_each_time_rebuilds_the_same_marts(
    tmp_path: Path, skew_s: float
) -> None:
    # Jobs arrive, move through their lifecycle, vanish early or leave at retention;
    # the server's clock may run ahead of ours (create_time corrected per sync).
    settings = WorldSettings(
        seed=11,
        projects=default_projects(11, count=2),
        arrival_interval_s=20.0,
        retention_s=3600.0,
        vanish_fraction=0.1,
        clock_skew_s=skew_s,
    )
    server, simulator = start_simulator(settings)
    simulator.clock.set(ANCHOR_2026 + 30 * 86400.0)
    database = tmp_path / "history.duckdb"
    with server:
        config = settings_for(simulator, tmp_path, freshness_minutes=FRESHNESS_MINUTES)
        projects = [p.project_id for p in config.projects]
        built = []
        for n in range(24):
            assert sync(simulator, config, database).all_ok
            if n % 3 == 2:  # marts after some syncs, not all: changes pile up between
                build(database, projects, simulator.now())
                built.append(last_build(database)[0])
                assert_same_as_built_for_every_job(database, projects, simulator.now(), tmp_path)
            simulator.clock.advance(45.0)
    assert built[0] == EVERY_JOB and built.count(CHANGED_JOBS) >= 5
    gone = query(database, "SELECT count(*) FROM drs.async_jobs WHERE is_gone")[0][0]
    moved = query(
        database, "SELECT count(*) FROM drs.status_transitions WHERE from_status IS NOT NULL"
    )[0][0]
    assert gone > 0 and moved > 0
