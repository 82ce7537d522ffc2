"""The history database resource hands out connections, as dagster-duckdb's does."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from drs_pipeline.defs.resources import HistoryDatabaseResource
from drs_pipeline.warehouse.store import WarehouseLockedError
from tests.helpers import another_process_holding


def test_a_read_write_connection_creates_the_file_and_writes(tmp_path: Path) -> None:
    database = tmp_path / "new" / "history.duckdb"
    resource = HistoryDatabaseResource(path=str(database))
    with resource.get_connection() as con:
        con.execute("CREATE TABLE t AS SELECT 42 AS answer")
    with resource.get_connection(read_only=True) as con:
        assert con.execute("SELECT answer FROM t").fetchall() == [(42,)]
        assert con.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]


def test_a_read_only_connection_refuses_writes(tmp_path: Path) -> None:
    resource = HistoryDatabaseResource(path=str(tmp_path / "history.duckdb"))
    with resource.get_connection():
        pass
    with (
        resource.get_connection(read_only=True) as con,
        pytest.raises(duckdb.InvalidInputException, match="read-only"),
    ):
        con.execute("CREATE TABLE t (x INTEGER)")


def test_the_connection_is_closed_when_the_block_raises(tmp_path: Path) -> None:
    resource = HistoryDatabaseResource(path=str(tmp_path / "history.duckdb"))
    with pytest.raises(RuntimeError, match="boom"), resource.get_connection() as con:
        kept = con
        raise RuntimeError("boom")
    with pytest.raises(duckdb.ConnectionException, match="closed"):
        kept.execute("SELECT 1")


def test_a_file_another_process_writes_fails_naming_it_after_the_wait(tmp_path: Path) -> None:
    database = tmp_path / "history.duckdb"
    resource = HistoryDatabaseResource(path=str(database), lock_timeout_s=1)
    with resource.get_connection():
        pass
    with (
        another_process_holding(database) as holder,
        pytest.raises(WarehouseLockedError, match=rf"locked by process {holder} "),
        resource.get_connection(read_only=True),
    ):
        pass
