"""The published copy: every committed row, nothing uncommitted, whichever way it is copied."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from drs_pipeline.warehouse.publish import publish
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
    # Nothing left beside the copy: no staging file, no write-ahead log.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.duckdb", "published.duckdb"]


def test_a_transaction_still_open_in_this_process_is_not_published(tmp_path: Path) -> None:
    # The file is not at rest (CHECKPOINT refuses while a transaction is open), so the
    # copy is taken as of one transaction instead: the open one's row is not in it.
    database, target = tmp_path / "history.duckdb", tmp_path / "published.duckdb"
    history_with_syncs(database, "s1")
    with connect(database) as writer:
        writer.execute("BEGIN TRANSACTION")
        writer.execute(SYNC_RUN, ["uncommitted", PUBLISHED_AT, PUBLISHED_AT])

        publish(database, target, published_at=PUBLISHED_AT)

        writer.execute("ROLLBACK")
    assert published_syncs(target) == (["s1"], [(PUBLISHED_AT, "s1")])


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
