"""The published copy: every committed row, nothing uncommitted, whichever way it is copied."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from drs_pipeline.warehouse.publish import FILE_AT_REST, TABLES, publish
from drs_pipeline.warehouse.store import connect, ensure_schema

PUBLISHED_AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SYNC_RUN = (
    "INSERT INTO drs.sync_runs (sync_id, project_id, started_at, finished_at, outcome, "
    "pages, jobs_seen, new_jobs, changed_jobs, gone_jobs, rejected_records) "
    "VALUES (?, 'p1', ?, ?, 'ok', 1, 0, 0, 0, 0, 0)"
)


def history_with_syncs(path: Path, *sync_ids: str) -> None:
    with connect(path) as con:
        ensure_schema(con)
        for sync_id in sync_ids:
            # The latest sync is the one started last: s2 after s1.
            started = datetime(2026, 12, 2, 11, int(sync_id[1:]), tzinfo=UTC)
            con.execute(SYNC_RUN, [sync_id, started, started])


def published_syncs(path: Path) -> tuple[list[str], list[tuple[object, ...]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        syncs = [
            row[0] for row in con.execute("SELECT sync_id FROM drs.sync_runs ORDER BY 1").fetchall()
        ]
        publication = con.execute("SELECT * FROM drs.publication").fetchall()
    return syncs, publication


def test_the_copy_holds_every_committed_row_and_says_when(tmp_path: Path) -> None:
    database, target = tmp_path / "history.duckdb", tmp_path / "published.duckdb"
    history_with_syncs(database, "s1", "s2")

    publication = publish(database, target, published_at=PUBLISHED_AT)

    assert published_syncs(target) == (["s1", "s2"], [(PUBLISHED_AT, "s2")])
    assert publication.sync_id == "s2" and publication.bytes == target.stat().st_size
    assert publication.copied_as == FILE_AT_REST
    # Nothing left beside the copy: no staging file, no write-ahead log.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.duckdb", "published.duckdb"]


def test_an_insert_still_open_in_this_process_is_not_published(tmp_path: Path) -> None:
    # CHECKPOINT writes only what is committed, so the file is at rest and its bytes
    # are the copy; the open transaction's row lives in that transaction alone.
    database, target = tmp_path / "history.duckdb", tmp_path / "published.duckdb"
    history_with_syncs(database, "s1")
    with connect(database) as writer:
        writer.execute("BEGIN TRANSACTION")
        writer.execute(SYNC_RUN, ["uncommitted", PUBLISHED_AT, PUBLISHED_AT])

        publication = publish(database, target, published_at=PUBLISHED_AT)

        writer.execute("ROLLBACK")
    assert publication.copied_as == FILE_AT_REST
    assert published_syncs(target) == (["s1"], [(PUBLISHED_AT, "s1")])


def test_an_update_still_open_in_this_process_makes_it_copy_the_tables(tmp_path: Path) -> None:
    # CHECKPOINT refuses while another connection is updating: the file is not at rest,
    # and the tables are copied as of one transaction, without the update.
    database, target = tmp_path / "history.duckdb", tmp_path / "published.duckdb"
    history_with_syncs(database, "s1", "s2")
    with connect(database) as writer:
        writer.execute("BEGIN TRANSACTION")
        writer.execute("UPDATE drs.sync_runs SET sync_id = 'updated' WHERE sync_id = 's1'")

        publication = publish(database, target, published_at=PUBLISHED_AT)

        writer.execute("ROLLBACK")
    assert publication.copied_as == TABLES
    assert published_syncs(target) == (["s1", "s2"], [(PUBLISHED_AT, "s2")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.duckdb", "published.duckdb"]


def test_no_history_is_an_error_that_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "history.duckdb"
    with pytest.raises(FileNotFoundError, match="no history to publish"):
        publish(missing, tmp_path / "published.duckdb", published_at=PUBLISHED_AT)
    assert list(tmp_path.iterdir()) == []


def test_publishing_again_replaces_the_copy_whole(tmp_path: Path) -> None:
    database, target = tmp_path / "history.duckdb", tmp_path / "published.duckdb"
    history_with_syncs(database, "s1")
    publish(database, target, published_at=PUBLISHED_AT)
    with duckdb.connect(str(target), read_only=True) as reader:
        history_with_syncs(database, "s2")
        later = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)

        publish(database, target, published_at=later)

        # A reader already open keeps its copy; a new one sees the new copy.
        assert reader.execute("SELECT count(*) FROM drs.sync_runs").fetchall() == [(1,)]
    assert published_syncs(target) == (["s1", "s2"], [(later, "s2")])
