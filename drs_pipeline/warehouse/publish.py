"""The read-only copy of the history that readers open: notebooks, SQL users.

DuckDB allows one writing process per file, or many readers, never both: a
notebook holding the main file would make the scheduled sync fail, and a sync
would make the notebook fail. So readers get their own file, replaced
atomically after each run: a reader sees the old copy or the new one, never a
half-written file, and a connection already open keeps answering from the old
copy (on POSIX a rename never disturbs an open file).

The copy is the file's own bytes, taken at rest (every change checkpointed into
it, under this process's write lock): it costs what copying the file costs, not
what re-encoding every table would. When the file is not at rest, the tables are
copied as of one transaction instead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

# Where the copy goes is resolved with the other paths, in config; imported from
# here too by callers that publish.
from drs_pipeline.config import published_path as published_path
from drs_pipeline.warehouse.store import attach, connect, scratch
from drs_pipeline.warehouse.target import check_publication

# How the copy was taken (Publication.copied_as).
FILE_AT_REST = "file at rest"
TABLES = "tables as of one transaction"


@dataclass(frozen=True)
class Publication:
    path: Path
    published_at: datetime
    sync_id: str | None
    bytes: int
    copied_as: str


def publish(
    database: Path, target: Path, *, published_at: datetime, lock_timeout_s: float = 30.0
) -> Publication:
    """Copy ``database`` to ``target`` consistently, then swap it in atomically.

    Opens ``database`` read-write, as the sync and the marts do: no other process may
    hold it meanwhile (readers read ``target``). Nothing else of this process may
    write to it meanwhile either: the job's steps that open it take turns.

    Refused (ConfigError) when ``target`` is the copy of the other kind of history:
    the embedded simulator's never replaces real projects' (``warehouse.target``).
    """
    if not database.is_file():
        raise FileNotFoundError(f"{database}: no history to publish")
    check_publication(database, target, lock_timeout_s=lock_timeout_s)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so that the final rename is atomic.
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staging.unlink(missing_ok=True)
    _remove_abandoned_staging(target)
    try:
        with connect(database, lock_timeout_s=lock_timeout_s) as con:
            copied_as = _copy(con, database, staging)
        with scratch() as con:
            attach(con, staging, "snapshot")
            sync_id = _latest_sync_id(con)
            con.execute(
                "CREATE TABLE snapshot.drs.publication AS "
                "SELECT ?::TIMESTAMPTZ AS published_at, ?::VARCHAR AS sync_id",
                [published_at, sync_id],
            )
            con.execute("DETACH snapshot")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
        staging.with_name(staging.name + ".wal").unlink(missing_ok=True)
    return Publication(target, published_at, sync_id, target.stat().st_size, copied_as)


def _copy(con: duckdb.DuckDBPyConnection, database: Path, staging: Path) -> str:
    """The file's bytes if it is at rest, else its tables as of one transaction."""
    if _copy_file_at_rest(con, database, staging):
        return FILE_AT_REST
    # Through the connection that has the file open: a second handle on it, even
    # read-only, is refused within one process.
    staging.unlink(missing_ok=True)
    attach(con, staging, "snapshot")
    (name,) = con.execute("SELECT current_database()").fetchall()[0]
    # COPY FROM DATABASE copies every schema, table and view as of one transaction.
    # The name is DuckDB's own, from the file's name: quoted as an identifier.
    quoted = '"' + str(name).replace('"', '""') + '"'
    con.execute(f"COPY FROM DATABASE {quoted} TO snapshot")
    con.execute("DETACH snapshot")
    return TABLES


def _copy_file_at_rest(con: duckdb.DuckDBPyConnection, database: Path, staging: Path) -> bool:
    """Copy the database file's bytes once every committed change is in it (CHECKPOINT,
    no write-ahead log left) and while this process holds its write lock: the same
    tables as COPY FROM DATABASE, at the cost of copying a file, since nothing is
    decoded or compressed again (docs/decisions/0002-published-copy.md).

    False, having copied nothing usable, when the file was not at rest: CHECKPOINT
    refused (another connection of this process is updating), or a write-ahead log
    left, or the file changed during the copy.
    """
    logs = [database.with_name(database.name + suffix) for suffix in (".wal", ".wal.checkpoint")]
    try:
        con.execute("CHECKPOINT")
    except duckdb.TransactionException:
        return False
    before = [_file_state(path) for path in (database, *logs)]
    if any(state is not None and state[0] > 0 for state in before[1:]):
        return False
    shutil.copyfile(database, staging)
    return [_file_state(path) for path in (database, *logs)] == before


def _file_state(path: Path) -> tuple[int, int, int] | None:
    """Size, modification and change times, or None when there is no such file."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_size, status.st_mtime_ns, status.st_ctime_ns


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
    rows = con.execute("SELECT arg_max(sync_id, started_at) FROM snapshot.drs.sync_runs").fetchall()
    return None if not rows or rows[0][0] is None else str(rows[0][0])
