"""A history written by the previous version is upgraded in place when it is opened."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from drs_pipeline.warehouse.store import Warehouse
from tests.helpers import T0, assert_history_invariants, project_sync, query

P = "p" * 32
T1, T2, T3 = T0 + timedelta(minutes=5), T0 + timedelta(minutes=10), T0 + timedelta(minutes=15)


def previous_version_history(path: Path) -> None:
    """Three syncs, then the history as the previous version kept it: the same tables
    without ``async_job_history.last_seen_at``."""
    with Warehouse(path) as warehouse:
        for sync_id, jobs, at, gone in [
            ("s1", {"a": "V", "b": "V", "c": "V"}, T0, frozenset[str]()),
            ("s2", {"a": "OK", "b": "V", "c": "V"}, T1, frozenset[str]()),
            ("s3", {"a": "OK", "b": "V"}, T2, frozenset({"c"})),
        ]:
            warehouse.apply_project_syncs([project_sync(sync_id, P, jobs, at, gone)])
        warehouse.connection.execute(
            "ALTER TABLE drs.async_job_history DROP COLUMN last_seen_at; CHECKPOINT"
        )


def test_a_previous_versions_history_gains_last_seen_at_on_opening(tmp_path: Path) -> None:
    database = tmp_path / "history.duckdb"
    previous_version_history(database)
    with Warehouse(database):
        pass
    # Closed intervals fall back to their valid_from (a looser, true bound); open ones
    # take their job's last observation.
    assert query(
        database,
        "SELECT async_job_id, status, valid_from, valid_to, last_seen_at "
        "FROM drs.async_job_history ORDER BY async_job_id, valid_from",
    ) == [
        ("a", "V", T0, T1, T0),
        ("a", "OK", T1, None, T2),
        ("b", "V", T0, None, T2),
        ("c", "V", T0, T2, T0),
    ]
    assert query(
        database,
        "SELECT is_nullable FROM duckdb_columns() WHERE table_name = 'async_job_history' "
        "AND column_name = 'last_seen_at'",
    ) == [(False,)]
    assert_history_invariants(database)


def test_the_upgraded_history_takes_the_next_sync_like_any_other(tmp_path: Path) -> None:
    database = tmp_path / "history.duckdb"
    previous_version_history(database)
    with Warehouse(database) as warehouse:
        warehouse.apply_project_syncs([project_sync("s4", P, {"a": "OK", "b": "OK"}, T3)])
    with Warehouse(database):
        pass  # opening an upgraded history again changes nothing
    assert query(
        database,
        "SELECT async_job_id, status, valid_from, valid_to, last_seen_at "
        "FROM drs.async_job_history WHERE async_job_id = 'b' ORDER BY valid_from",
    ) == [("b", "V", T0, T3, T2), ("b", "OK", T3, None, T3)]
    assert_history_invariants(database)
