"""Matrix row 8: two syncs at once, and a reader holding the database.

DuckDB allows one writing process per file (or readers only). Two syncs started
together must take turns and both land; one that cannot get the file in time,
or that finds a reader holding it, must fail saying which process holds it, and
leave the history as it was. (tests/test_explore.py shows a bare read-write
connection named; here the holders are a real sync and a read-only reader.)
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from drs_pipeline.sync import SyncReport, run_sync
from drs_pipeline.warehouse.store import WarehouseLockedError

from ..helpers import QUICK_RETRY, Simulator, assert_history_invariants, query, settings_for
from .helpers import add_jobs, child_env

# A sync in its own process: waits for "go", then syncs and says how it went.
SYNC_CHILD = """
import sys
from pathlib import Path
from drs_pipeline.config import load_settings_file
from drs_pipeline.sync import run_sync

settings = load_settings_file(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
report = run_sync(settings, Path(sys.argv[2]), lock_timeout_s=30)
print(" ".join(p.run.outcome for p in report.projects), flush=True)
"""

# A reader: holds the database open read-only until told to let go.
READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
sys.stdin.readline()
con.close()
print("released", flush=True)
sys.stdin.readline()
"""


def child(script: str, *args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or child_env(),
    )


def tell(process: subprocess.Popen[str], line: str = "go") -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def hear(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def history(database: Path) -> list[tuple[object, ...]]:
    return query(database, "SELECT * FROM drs.async_job_history ORDER BY ALL") + query(
        database, "SELECT * FROM drs.sync_runs ORDER BY ALL"
    )


def holds_the_lock(database: Path) -> bool:
    """Whether another process has the file open for writing (even a reader is refused)."""
    try:
        duckdb.connect(str(database), read_only=True).close()
    except duckdb.IOException as exc:
        return "lock" in str(exc)
    return False


def test_two_syncs_at_once_take_turns_and_one_short_of_time_names_the_other(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project_ids = simulator.project_ids[:2]
    for project_id in project_ids:
        add_jobs(simulator, project_id, 60)
    # Slow pages, so that the first sync holds the file for over a second.
    simulator.faults.latency_s = 0.1
    settings = settings_for(simulator, tmp_path, project_ids, page_size=5, max_concurrency=2)
    first = child(
        SYNC_CHILD, tmp_path / "drs.yaml", database, env=child_env(DRS_AUTH_TOKEN=simulator.token)
    )
    assert hear(first) == "ready"
    caplog.set_level(logging.WARNING, logger="drs_pipeline")
    tell(first)
    # Listing has begun: the first holds the file for its whole sync from here on (its
    # guard, warehouse.target, opens and closes the file once before that).
    deadline = time.monotonic() + 30
    while simulator.app.stats.requests == 0:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    assert holds_the_lock(database)

    # A second sync with time to wait takes its turn...
    reports: list[SyncReport] = []
    second = threading.Thread(
        target=lambda: reports.append(run_sync(settings, database, retry=QUICK_RETRY))
    )
    second.start()
    # ...and a third that cannot wait long fails, saying who holds the file.
    with pytest.raises(WarehouseLockedError) as third:
        run_sync(settings, database, retry=QUICK_RETRY, lock_timeout_s=0.3)
    simulator.faults.latency_s = 0.0  # the second lists once the first is done
    second.join(timeout=60)
    assert hear(first) == "ok ok" and first.wait(timeout=30) == 0

    assert f"is locked by process {first.pid} (waited 0 s)" in str(third.value)
    assert "DuckDB allows one writer, or many readers, per file" in str(third.value)
    (report,) = reports
    assert report.all_ok
    assert f"is locked by process {first.pid}; waiting up to 30 s" in caplog.text
    assert query(database, "SELECT count(DISTINCT sync_id), count(*) FROM drs.sync_runs") == [
        (2, 4)
    ], "the two that waited landed; the one that gave up wrote nothing"
    assert query(database, "SELECT sum(new_jobs) FROM drs.sync_runs") == [(120,)]
    assert_history_invariants(database)


def test_a_reader_holding_the_database_is_named_and_the_writer_proceeds_once_it_lets_go(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 5)
    settings = settings_for(simulator, tmp_path, [project_id])
    assert run_sync(settings, database, retry=QUICK_RETRY).all_ok
    before = history(database)
    add_jobs(simulator, project_id, 3)
    simulator.clock.advance(60)
    reader = child(READER, database)
    try:
        assert hear(reader) == "holding"

        with pytest.raises(WarehouseLockedError, match=rf"locked by process {reader.pid} "):
            run_sync(settings, database, retry=QUICK_RETRY, lock_timeout_s=0.5)
        assert history(database) == before, "nothing written, nothing lost"

        # A writer with time to wait gets the file as soon as the reader lets go.
        caplog.set_level(logging.WARNING, logger="drs_pipeline")
        threading.Timer(0.5, tell, (reader, "release")).start()
        report = run_sync(settings, database, retry=QUICK_RETRY, lock_timeout_s=20)
        assert hear(reader) == "released"
    finally:
        reader.kill()
        reader.wait()
    assert report.all_ok and report.projects[0].run.new_jobs == 3
    assert f"is locked by process {reader.pid}; waiting up to 20 s" in caplog.text
    assert_history_invariants(database)
