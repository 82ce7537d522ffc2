"""The soak: many syncs, every fault on at a low rate, while the world moves.

The streaming world (jobs arriving, moving through their lifecycle, leaving) is
driven by a ManualClock advanced between syncs, with scripted status changes
(back and forth), owner changes, departures and returns on top, and every fault
switched on: 429, 5xx, malformed bodies, the list drifting between pages, and
latency. The world is frozen during a sync, so what it showed at each sync's
time is known exactly, and every sync is checked against it:

* a job the database calls gone is one the API confirmed absent at that time;
* an ok sync observed every job it knew that was still listed, with the status
  the world had (and, where the list did not drift, every job listed at all);
* an incomplete one marked nothing gone; nothing observed was invented.

At the end, with the faults off, one more sync, and the history is compared with
the ground truth: every job, its final status, and its status sequence as
observed (the distinct consecutive statuses the world had at the syncs that
saw it, which for a listed, known job is every ok sync).

Bounded in time: DRS_SOAK_SECONDS (default 20) of syncs, then the checks.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from drs_pipeline.drs import statuses
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.sync import run_sync

from ..helpers import Simulator, assert_history_invariants, query, settings_for

SOAK_SECONDS = float(os.environ.get("DRS_SOAK_SECONDS", "20"))
# Fast retries: the faults are frequent, and waiting is not what is tested here.
RETRY = RetryPolicy(max_attempts=8, initial_delay_s=0.001, max_delay_s=0.01, max_total_wait_s=5)
Key = tuple[str, str]  # (project_id, async_job_id)


@dataclass
class Observed:
    """One sync, as the world and the database saw it."""

    at: datetime
    outcomes: dict[str, str]
    listed: dict[Key, str]  # what the world listed at that time (before or after drift)
    listed_after: set[Key]  # what it still listed once the sync was done
    known: set[Key]  # present in the database before the sync
    seen: dict[Key, str]  # observed by the sync (last_seen_at == its time), with status
    gone: set[Key]  # marked gone by the sync
    drifted: set[str]  # projects whose list drifted during the sync


def listing(simulator: Simulator) -> dict[Key, str]:
    now = simulator.clock.now()
    return {
        (project_id, job.async_job_id): job.status_at(now)
        for project_id in simulator.project_ids
        for job in simulator.world.list_jobs(project_id, now, sort_dir="asc")
    }


def rows(database: Path, sql: str, params: list[object] | None = None) -> dict[Key, object]:
    return {(row[0], row[1]): row[2] for row in query(database, sql, params)}


def collapse(sequence: list[str]) -> list[str]:
    return [s for i, s in enumerate(sequence) if i == 0 or s != sequence[i - 1]]


def move_the_world(simulator: Simulator, rng: random.Random, vanished: list[Key]) -> None:
    """Time passes; on top of the world's own lifecycle, a few scripted changes."""
    world = simulator.world
    simulator.clock.advance(rng.uniform(20, 90))  # 20 to 90 world minutes at speed 60
    present = sorted(listing(simulator))
    for project_id, job_id in rng.sample(present, 3):  # statuses back and forth
        world.set_status(project_id, job_id, rng.choice(statuses.CURRENT))
    project_id, job_id = rng.choice(present)
    world.set_owner(project_id, job_id, user_name=f"owner-{rng.randrange(3)}")
    for project_id, job_id in rng.sample(present, 2):
        world.vanish(project_id, job_id)
        vanished.append((project_id, job_id))
    if vanished and rng.random() < 0.5:
        world.restore(*vanished.pop(rng.randrange(len(vanished))))
    # Syncs happen a moment after the scripted changes, never at the same instant.
    simulator.clock.advance(1)


@pytest.mark.slow
def test_soak_many_syncs_with_every_fault_while_the_world_moves(
    streaming_simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    simulator = streaming_simulator
    faults = simulator.faults
    faults.rate_429, faults.retry_after = 0.05, "0"
    faults.rate_5xx = 0.05
    faults.rate_malformed = 0.03
    faults.drift_rate = 0.03
    faults.latency_s = 0.001
    settings = settings_for(simulator, tmp_path, page_size=50, max_concurrency=4)
    rng = random.Random(2026)
    vanished: list[Key] = []
    history: list[Observed] = []
    injected: Counter[str] = Counter()
    deadline = time.monotonic() + SOAK_SECONDS

    def one_sync() -> Observed:
        at = simulator.now()
        listed, known = listing(simulator), set(rows(database, PRESENT)) if history else set()
        simulator.app.stats.log.clear()
        report = run_sync(settings, database, retry=RETRY, clock=simulator.now)
        log = list(simulator.app.stats.log)
        injected.update(r.fault for r in log if r.fault)
        after = listing(simulator)
        return Observed(
            at=at,
            outcomes={r.run.project_id: r.run.outcome for r in report.projects},
            listed={**after, **listed},
            listed_after=set(after),
            known=known,
            seen={k: str(v) for k, v in rows(database, SEEN, [at]).items()},
            gone=set(rows(database, GONE, [at])),
            drifted={r.project_id for r in log if r.fault == "drift" and r.project_id},
        )

    while time.monotonic() < deadline:
        sync = one_sync()
        history.append(sync)
        check_one_sync(sync)
        assert_history_invariants(database)
        move_the_world(simulator, rng, vanished)
    faults.clear()
    final = one_sync()
    history.append(final)
    check_one_sync(final)
    assert set(final.outcomes.values()) == {"ok"}

    # Every job: what the API lists now is present with its status; the rest is gone.
    stored = rows(database, "SELECT project_id, async_job_id, status FROM drs.async_jobs")
    gone = rows(database, GONE_ANY)
    assert {k: v for k, v in stored.items() if not gone[k]} == final.listed
    # Every job any ok, undrifted sync saw listed made it into the history.
    listed_cleanly = {
        key
        for sync in history
        for key in sync.listed_after
        if sync.outcomes[key[0]] == "ok" and key[0] not in sync.drifted
    }
    assert listed_cleanly <= set(stored)
    # Its status sequence: what the world showed at each sync that observed it.
    expected: dict[Key, list[str]] = {}
    for sync in history:
        for key, status in sync.seen.items():
            expected.setdefault(key, []).append(status)
    recorded: dict[Key, list[str]] = {}
    for project_id, job_id, status in query(
        database,
        "SELECT project_id, async_job_id, status FROM drs.async_job_history "
        "ORDER BY project_id, async_job_id, valid_from",
    ):
        recorded.setdefault((project_id, job_id), []).append(status)
    assert set(recorded) == set(expected) == set(stored)
    wrong = {k: (collapse(v), collapse(expected[k])) for k, v in recorded.items()}
    wrong = {k: v for k, v in wrong.items() if v[0] != v[1]}
    assert not wrong, f"{len(wrong)} status sequences differ, e.g. {list(wrong.items())[:3]}"

    outcomes = Counter(o for sync in history for o in sync.outcomes.values())
    transitions = sum(len(collapse(v)) - 1 for v in recorded.values())
    print(
        f"\nsoak: {len(history)} syncs in {SOAK_SECONDS:.0f} s ({dict(outcomes)} project syncs), "
        f"{len(stored)} jobs, {transitions} status changes, {sum(gone.values())} gone, "
        f"faults injected {dict(injected)}"
    )
    assert len(history) >= 5 and transitions > 0 and any(gone.values())
    assert all(injected[kind] for kind in ("429", "5xx", "malformed", "drift"))


PRESENT = "SELECT project_id, async_job_id, NULL FROM drs.async_jobs WHERE NOT is_gone"
SEEN = "SELECT project_id, async_job_id, status FROM drs.async_jobs WHERE last_seen_at = ?"
GONE = "SELECT project_id, async_job_id, NULL FROM drs.async_jobs WHERE gone_at = ?"
GONE_ANY = "SELECT project_id, async_job_id, is_gone FROM drs.async_jobs"


def check_one_sync(sync: Observed) -> None:
    """What must hold of one sync, whatever the faults did."""
    # Nothing invented: each observation is of a job listed then, with its status then.
    for key, status in sync.seen.items():
        assert sync.listed.get(key) == status, (key, status, sync.listed.get(key))
    for project_id, outcome in sync.outcomes.items():
        mine = {k for k in sync.listed_after if k[0] == project_id}
        gone = {k for k in sync.gone if k[0] == project_id}
        seen = {k for k in sync.seen if k[0] == project_id}
        if outcome == "failed":
            assert not seen and not gone, "a failed project writes nothing"
            continue
        if outcome == "incomplete":
            assert not gone, "an incomplete listing marks nothing gone"
            continue
        known = {k for k in sync.known if k[0] == project_id}
        # Gone only when confirmed absent; every known job still listed was observed.
        assert gone <= known - mine
        assert known & mine <= seen, "a known, listed job was not observed"
        if project_id not in sync.drifted:
            assert mine <= seen, "without drift, every listed job is observed"
        # A known job no longer listed is gone now, or left mid-sync (drift) after
        # being seen: it is then found gone by the next sync.
        for key in known - mine - gone:
            assert key in seen and project_id in sync.drifted, key
