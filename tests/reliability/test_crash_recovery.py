"""Matrix row 7: the process killed (SIGKILL) at random points, then run again.

A child process runs what a scheduled run does to the files (the sync, the
marts, the publication; Dagster itself adds nothing to them and takes seconds
to import) and is killed after a random delay, several times in a row on the
same database. After each kill the database must open with its invariants
intact, and the published copy, if any, must be a whole one. A final
uninterrupted run must then converge on exactly the state of a run that was
never killed, against the same frozen simulator world.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from drs_pipeline.config import load_settings_file
from drs_pipeline.drs import statuses
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.publish import publish

from ..helpers import Simulator, assert_history_invariants, query, write_config
from .helpers import add_jobs, child_env

# Where each kill lands: a random point within so many seconds after the child says
# this (0: within the time a whole sync takes). So: in the sync, the marts, the copy.
KILLS = [("go", 0.0), ("synced", 0.06), ("marts", 0.06)]

# What the scheduled job does to the files, without Dagster. Waits for "go" on stdin
# so that the kill lands in the run, not in the interpreter's start-up.
CHILD = """
import sys
from datetime import UTC, datetime
from pathlib import Path

from drs_pipeline.config import load_settings_file
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.publish import publish
from drs_pipeline.warehouse.marts import build_marts
from drs_pipeline.warehouse.publish import publish

config, database, published = (Path(arg) for arg in sys.argv[1:4])
settings = load_settings_file(config)
print("ready", flush=True)
sys.stdin.readline()
run_sync(settings, database)
print("synced", flush=True)
build_marts(
    database,
    stuck_thresholds_s=settings.stuck_thresholds_s,
    as_of=datetime.now(UTC),
    configured_projects={p.project_id: p.region for p in settings.projects},
    freshness_minutes=settings.freshness_minutes,
)
print("marts", flush=True)
publish(database, published, published_at=datetime.now(UTC))
print("published", flush=True)
"""

JOBS = """
SELECT project_id, region, async_job_id, status, domain_name, user_name, create_time, is_gone
FROM drs.async_jobs ORDER BY ALL
"""
# Times differ between runs (each observes at its own wall time); the shape may not.
HISTORY = """
SELECT project_id, async_job_id, status, domain_name, user_name, valid_to IS NULL AS open
FROM drs.async_job_history ORDER BY ALL
"""


def start(child: subprocess.Popen[str]) -> float:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    return time.monotonic()


def state(database: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    return query(database, JOBS), query(database, HISTORY)


def spawn(config: Path, database: Path, published: Path, token: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), str(database), str(published)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(DRS_AUTH_TOKEN=token),
    )


def test_killed_at_random_points_the_history_survives_and_converges(
    simulator: Simulator, tmp_path: Path
) -> None:
    world = simulator.world
    jobs = {
        project_id: add_jobs(simulator, project_id, 300) for project_id in simulator.project_ids
    }
    config = write_config(tmp_path / "drs.yaml", simulator, page_size=50, max_concurrency=4)
    # A little latency stretches the listing, so kills land in it as well as in merges.
    simulator.faults.latency_s = 0.002
    settings = load_settings_file(config, {"DRS_AUTH_TOKEN": simulator.token})
    base = tmp_path / "base.duckdb"
    assert run_sync(settings, base).all_ok
    reference, victim = tmp_path / "reference.duckdb", tmp_path / "victim.duckdb"
    shutil.copy(base, reference)
    shutil.copy(base, victim)
    # Then the world moves once and freezes: every run below sees the same listing,
    # with transitions, owner changes, departures and arrivals to merge.
    rng = random.Random(42)
    for project_id, job_ids in jobs.items():
        for job_id in rng.sample(job_ids, 40):
            world.set_status(project_id, job_id, statuses.VALIDATE_SUCCESS)
        for job_id in rng.sample(job_ids, 10):
            world.set_owner(project_id, job_id, user_name="new-owner")
        for job_id in rng.sample(job_ids, 20):
            world.vanish(project_id, job_id)
        add_jobs(simulator, project_id, 20)
    simulator.clock.advance(1)

    published = tmp_path / "published.duckdb"
    # The children start now and import while the reference is made; each waits for "go".
    children = [spawn(config, victim, published, simulator.token) for _ in KILLS]
    for child in children:  # imported and waiting: the reference is timed undisturbed
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    started = time.monotonic()
    assert run_sync(settings, reference).all_ok
    sync_s = time.monotonic() - started
    reached: list[str] = []
    for seed, (child, (after, within_s)) in enumerate(zip(children, KILLS, strict=True)):
        start(child)
        assert child.stdout is not None
        while after != "go" and child.stdout.readline().strip() != after:
            pass
        time.sleep(random.Random(seed).uniform(0.0, within_s or sync_s))
        child.send_signal(signal.SIGKILL)
        child.wait()
        said = child.stdout.read().split()
        reached.append(said[-1] if said else after)
        # The database opens, and every promise of the history holds.
        assert_history_invariants(victim)
        if published.exists():  # a whole copy or none: never half a file
            with duckdb.connect(str(published), read_only=True) as con:
                assert con.execute("SELECT count(*) FROM drs.publication").fetchall() == [(1,)]

    assert run_sync(settings, victim).all_ok
    assert_history_invariants(victim)
    assert state(victim) == state(reference)
    # A publication killed midway leaves its staging copy (a whole database) behind;
    # the next one clears those of processes that are gone, and only those.
    killed_midway = [path.name for path in tmp_path.glob(".published.duckdb.*.tmp*")]
    dead = tmp_path / ".published.duckdb.999999999.tmp"  # beyond any pid_max
    alive = tmp_path / ".published.duckdb.1.tmp"  # pid 1 always runs
    dead.write_bytes(b"left by a killed run")
    alive.write_bytes(b"being written by a live run")
    publish(victim, published, published_at=datetime.now(UTC))
    assert [path.name for path in tmp_path.glob(".published.duckdb.*.tmp*")] == [alive.name]
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute(JOBS).fetchall() == query(reference, JOBS)
    runs = query(victim, "SELECT count(DISTINCT sync_id) FROM drs.sync_runs")[0][0]
    print(f"killed after: {reached}; syncs recorded: {runs}; left by a kill: {killed_midway}")
