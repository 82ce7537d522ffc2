"""The merge's steps as declared in warehouse/merge.py, and the views checks.sql reads.

(That skipping steps with nothing to do changes nothing is in test_store.)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drs_pipeline.warehouse import merge
from drs_pipeline.warehouse.health import invariant_violations
from drs_pipeline.warehouse.merge import HistoryInvariantError, ProjectSync, Work
from drs_pipeline.warehouse.sql import named_statements, read_sql
from drs_pipeline.warehouse.store import Warehouse
from tests.helpers import T0, project_sync

P = "p" * 32


def sync(sync_id: str, jobs: dict[str, str], at: datetime) -> ProjectSync:
    return project_sync(sync_id, P, jobs, at)


def test_the_declared_steps_are_the_sql_files_statements_in_their_order() -> None:
    merge_sql = [name for name, _ in named_statements(read_sql("merge.sql"))]
    # note_jobs_reading_runs: run by insert_runs, after the run rows.
    declared = [
        "stage",
        "work",
        *(step.name for step in merge.MERGE_STEPS),
        "note_jobs_reading_runs",
        "counts",
    ]
    assert declared == merge_sql
    checks_sql = [name for name, _ in named_statements(read_sql("merge_checks.sql"))]
    assert [step.name for step in merge.COPY_STEPS] + ["new_job_twice"] == checks_sql
    invariants = [name for name, _ in named_statements(read_sql("checks.sql"))]
    assert [step.name for step in merge.CHECK_STEPS] == ["new_job_twice", *invariants]


def test_each_step_runs_for_its_kind_of_work() -> None:
    nothing = Work(*[False] * 8)
    skipped = {step.name for step in merge.MERGE_STEPS if not step.runs_if(nothing)}
    assert skipped == {
        "close_changed_intervals",
        "update_seen_jobs",
        "update_seen_intervals",
        "update_changed_status",
        "update_changed_owner",
        "update_came_back",
        "update_seen_details",
        "close_gone_intervals",
        "mark_gone",
        "note_changes_for_marts",
    }
    assert not any(step.runs_if(nothing) for step in merge.COPY_STEPS)
    assert [step.name for step in merge.CHECK_STEPS if step.runs_if(nothing)] == ["new_job_twice"]
    gone = replace(nothing, gone=True, marts_built=True)
    assert gone.touched and replace(nothing, changed_or_back=True).touched
    assert not replace(nothing, seen_again=True, changed=False).touched
    assert [step.name for step in merge.MERGE_STEPS if step.runs_if(gone)] == [
        "open_intervals",
        "insert_new_jobs",
        "stage_gone",
        "close_gone_intervals",
        "mark_gone",
        "note_changes_for_marts",
    ]


def break_job(warehouse: Warehouse, job_id: str) -> None:
    """A second current row for a job: the history as a bug elsewhere might leave it."""
    warehouse.connection.execute(
        "INSERT INTO drs.async_jobs FROM drs.async_jobs WHERE async_job_id = ?", [job_id]
    )


def test_the_pre_commit_check_reads_the_merges_rows_and_the_asset_check_all_rows(
    tmp_path: Path,
) -> None:
    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        warehouse.apply_project_syncs([sync("s1", {"a": "V", "b": "V"}, T0)])
        break_job(warehouse, "a")
        whole = invariant_violations(warehouse.connection)
        assert list(whole) == ["jobs_stored_twice", "open_interval_count_wrong"]
        assert whole["jobs_stored_twice"].to_dict("records") == [
            {"project_id": P, "async_job_id": "a", "copies": 2}
        ]
        # A merge that changes b alone checks b's rows: it commits.
        (run,) = warehouse.apply_project_syncs(
            [sync("s2", {"a": "V", "b": "OK"}, T0 + timedelta(minutes=1))]
        )
        assert (run.new_jobs, run.changed_jobs) == (0, 1)
        # After that merge checked its copies, the whole history is checked again.
        assert list(invariant_violations(warehouse.connection)) == list(whole)
        # A merge that changes a checks a's rows, and rolls back.
        with pytest.raises(HistoryInvariantError, match="jobs_stored_twice: 1 rows"):
            warehouse.apply_project_syncs(
                [sync("s3", {"a": "OK", "b": "OK"}, T0 + timedelta(minutes=2))]
            )
        rows = warehouse.connection.execute(
            "SELECT sync_id FROM drs.sync_runs ORDER BY ALL"
        ).fetchall()
        assert rows == [("s1",), ("s2",)]
