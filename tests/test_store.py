"""The warehouse's merge (``warehouse.store``): a batch of projects lands what one
project at a time lands, steps with nothing to do are skipped, the pre-commit check
rolls a whole batch back, missing jobs are found, small row groups are compacted."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from drs_pipeline.warehouse import merge
from drs_pipeline.warehouse.merge import HistoryInvariantError
from drs_pipeline.warehouse.normalize import Normalized
from drs_pipeline.warehouse.store import Warehouse
from tests.helpers import T0, history_tables, project_sync, rounds


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
    assert history_tables(together) == history_tables(alone)
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
    assert history_tables(skipping) == history_tables(every_step)


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
    assert history_tables(path) == {"async_jobs": [], "async_job_history": [], "sync_runs": []}


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


def test_small_row_groups_are_left_until_there_are_many_then_compacted(tmp_path: Path) -> None:
    # Checkpoints do not vacuum (docs/decisions/0003-merge-design.md), so each
    # session that adds a few jobs leaves a small row group; past the allowance, a
    # session compacts them.
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
