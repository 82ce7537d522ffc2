"""The read-only copy of the history that readers open: notebooks, SQL users.

DuckDB allows one writing process per file, or many readers, never both: a
notebook holding the main file would make the scheduled sync fail, and a sync
would make the notebook fail. So readers get their own file, replaced
atomically after each run: a reader sees the old copy or the new one, never a
half-written file, and a connection already open keeps answering from the old
copy (on POSIX a rename never disturbs an open file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

# Where the copy goes is resolved with the other paths, in config; imported from
# here too by callers that publish.
from drs_pipeline.config import published_path as published_path
from drs_pipeline.warehouse.store import attach, scratch
from drs_pipeline.warehouse.target import check_publication


@dataclass(frozen=True)
class Publication:
    path: Path
    published_at: datetime
    sync_id: str | None
    bytes: int


def publish(
    database: Path, target: Path, *, published_at: datetime, lock_timeout_s: float = 30.0
) -> Publication:
    """Copy ``database`` to ``target`` consistently, then swap it in atomically.

    Refused (ConfigError) when ``target`` is the copy of the other kind of history:
    the embedded simulator's never replaces real projects' (``warehouse.target``).
    """
    check_publication(database, target, lock_timeout_s=lock_timeout_s)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so that the final rename is atomic.
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staging.unlink(missing_ok=True)
    _remove_abandoned_staging(target)
    try:
        with scratch() as con:
            attach(con, database, "source", read_only=True, lock_timeout_s=lock_timeout_s)
            attach(con, staging, "snapshot")
            # COPY FROM DATABASE copies every schema, table and view as of one
            # transaction: a consistent snapshot, written compactly.
            con.execute("COPY FROM DATABASE source TO snapshot")
            sync_id = _latest_sync_id(con)
            con.execute(
                "CREATE TABLE snapshot.drs.publication AS "
                "SELECT ?::TIMESTAMPTZ AS published_at, ?::VARCHAR AS sync_id",
                [published_at, sync_id],
            )
            con.execute("DETACH snapshot")
            con.execute("DETACH source")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
        staging.with_name(staging.name + ".wal").unlink(missing_ok=True)
    return Publication(target, published_at, sync_id, target.stat().st_size)


def _remove_abandoned_staging(target: Path) -> None:
    """Staging copies left by a publication that was killed midway (each a whole copy
    of the database): removed, unless the process that wrote it still runs."""
    prefix = f".{target.name}."
    for leftover in target.parent.glob(f"{prefix}*.tmp*"):
        pid = leftover.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            leftover.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _latest_sync_id(con: duckdb.DuckDBPyConnection) -> str | None:
    rows = con.execute("SELECT arg_max(sync_id, started_at) FROM source.drs.sync_runs").fetchall()
    return None if not rows or rows[0][0] is None else str(rows[0][0])
