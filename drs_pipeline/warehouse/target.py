"""The guard between real history and the embedded simulator's.

With no configuration the product syncs its embedded simulator, so that it runs
with zero set-up. That must never land in a database of real projects, nor real
projects in a database of simulated ones: each database records what it holds,
in ``drs.database_info`` (key ``projects_from``), the first time it is written,
and every writer checks it before its first write on its own connection
(``claim_target``, in ``run_sync``; ``check_publication`` in ``publish`` for the
readers' copy). The command line checks first, read-only (``check_target``), so
that it refuses before it starts anything.

A database written before ``drs.database_info`` existed is judged by the
projects in its ``drs.sync_runs``: only the embedded simulator's, or any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from drs_pipeline.config import (
    DEFAULT_CONFIG_NAME,
    ConfigError,
    Settings,
    SimulatorSettings,
    drs_home,
)
from drs_pipeline.warehouse.store import attach, connect, scratch

EMBEDDED = "embedded simulator"
CONFIGURED = "configured projects"
KIND_KEY = "projects_from"
_DESCRIBED = {EMBEDDED: "the embedded simulator", CONFIGURED: "real projects"}

_CREATE = (
    "CREATE SCHEMA IF NOT EXISTS drs; "
    "CREATE TABLE IF NOT EXISTS drs.database_info (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"
)


def kind_of(settings: Settings) -> str:
    return EMBEDDED if settings.uses_embedded_simulator else CONFIGURED


def check_target(
    database: Path,
    settings: Settings,
    *,
    published: Path | None = None,
    lock_timeout_s: float = 30.0,
) -> None:
    """Refuse ``settings``' projects for ``database`` when it holds the other kind of
    history, writing nothing (a new database is fine). With ``published``, check the
    readers' copy the same way (``check_publication``)."""
    held = None
    if database.exists():
        with connect(database, read_only=True, lock_timeout_s=lock_timeout_s) as con:
            held = _recorded_kind(con, "") or _inferred_kind(con, "")
        _refuse_other_kind(database, held, settings)
    if published is not None:
        # A new database will hold what these settings sync.
        kind = held or kind_of(settings)
        check_publication(database, published, kind=kind, lock_timeout_s=lock_timeout_s)


def claim_target(con: duckdb.DuckDBPyConnection, database: Path, settings: Settings) -> None:
    """``check_target`` on a writer's connection, before its first write, recording the
    kind in a database that has none yet."""
    wanted = kind_of(settings)
    held = _recorded_kind(con, "")
    if held is None:
        held = _inferred_kind(con, "")
        if held is None or held == wanted:
            con.execute(_CREATE)
            con.execute(
                "INSERT OR REPLACE INTO drs.database_info VALUES (?, ?), ('recorded_at', ?)",
                [KIND_KEY, held or wanted, datetime.now(UTC).isoformat()],
            )
    _refuse_other_kind(database, held, settings)


def _refuse_other_kind(database: Path, held: str | None, settings: Settings) -> None:
    if held is not None and held != kind_of(settings):
        raise ConfigError(str(database), "(database)", _refusal(held, settings))


def check_publication(
    database: Path, published: Path, *, kind: str | None = None, lock_timeout_s: float = 30.0
) -> None:
    """Refuse to publish ``database`` (holding ``kind`` of history: read from it when
    not given) over a readers' copy of the other kind (one ``DRS_PUBLISHED_PATH``
    shared by a demo and the real history)."""
    if not published.exists() or (kind is None and not database.exists()):
        return
    with scratch() as con:
        source = kind
        if source is None:
            attach(con, database, "source", read_only=True, lock_timeout_s=lock_timeout_s)
            source = _recorded_kind(con, "source.") or _inferred_kind(con, "source.")
        attach(con, published, "copy", read_only=True)
        copy = _recorded_kind(con, "copy.") or _inferred_kind(con, "copy.")
    if source is not None and copy is not None and source != copy:
        raise ConfigError(
            str(published),
            "(published copy)",
            f"is the readers' copy of the history of {_DESCRIBED[copy]}; {database} holds "
            f"that of {_DESCRIBED[source]} and would replace it: point DRS_PUBLISHED_PATH at "
            f"another file (or unset it) when syncing {database.name}",
        )


def _refusal(held: str, settings: Settings) -> str:
    if held == CONFIGURED:
        config = drs_home() / DEFAULT_CONFIG_NAME
        return (
            "holds the history of real projects; the embedded simulator (what `demo` syncs, "
            "and `sync` and the schedule when no drs.yaml is found) is never synced into it: "
            f"to sync the real projects set DRS_CONFIG or write {config}; "
            "for the simulator, point DRS_DUCKDB_PATH (or --database) at another file"
        )
    return (
        f"holds the embedded simulator's demo history; the real projects of {settings.source} "
        "are never synced into it: point DRS_DUCKDB_PATH (or --database) at another file for "
        "them, or delete this demo database"
    )


def _recorded_kind(con: duckdb.DuckDBPyConnection, catalog: str) -> str | None:
    if not _has_table(con, catalog, "database_info"):
        return None
    row = con.execute(
        f"SELECT value FROM {catalog}drs.database_info WHERE key = ?",  # noqa: S608 - ours
        [KIND_KEY],
    ).fetchone()
    return None if row is None else str(row[0])


def _inferred_kind(con: duckdb.DuckDBPyConnection, catalog: str) -> str | None:
    """An older database's kind, from the projects it synced; None if it synced none."""
    if not _has_table(con, catalog, "sync_runs"):
        return None
    rows = con.execute(
        f"SELECT DISTINCT project_id FROM {catalog}drs.sync_runs"  # noqa: S608 - ours
    ).fetchall()
    return _kind_of_projects(str(project_id) for (project_id,) in rows)


def _kind_of_projects(project_ids: Iterable[str]) -> str | None:
    found = set(project_ids)
    if not found:
        return None
    # Any project that is not the simulator's makes it real history, to be protected.
    return EMBEDDED if found <= embedded_simulator_project_ids() else CONFIGURED


def embedded_simulator_project_ids() -> frozenset[str]:
    # Imported here: only an older database without drs.database_info needs it.
    from drs_pipeline.simulator import WorldSettings

    return frozenset(
        project.project_id for project in WorldSettings(seed=SimulatorSettings().seed).projects
    )


def _has_table(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> bool:
    database = catalog.rstrip(".") or None
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'drs' AND table_name = ? "
        "AND (? IS NULL OR database_name = ?)",
        [table, database, database],
    ).fetchone()
    return bool(row and row[0])
