"""The transitions and durations against the simulator's ground truth.

The generated world knows when each job really changed status (its timeline, on
the server's clock); the history only knows what the syncs saw, on ours. Every
bound the marts give must contain the truth: a change lies after its not_before
and no later than its not_after, and each duration lies within [low_s, high_s].
Syncs here are closer together than the shortest stay the world makes (30 s), so
no change goes unseen between two of them. The server runs on our clock, then two
minutes ahead of it: create_time is corrected by the offset each sync measures
from the Date header, which is known to the second, so durations that start at
create_time may be off by that offset's error (known here: the true skew is).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from drs_pipeline.drs.statuses import COMMIT_SUCCESS, VALIDATING
from drs_pipeline.simulator import SimJob, WorldSettings
from drs_pipeline.simulator.model import ANCHOR_2026, default_projects
from drs_pipeline.warehouse.health import describe_violations, mart_violations
from drs_pipeline.warehouse.marts import build_marts

from .helpers import (
    Simulator,
    assert_history_invariants,
    query,
    settings_for,
    start_simulator,
    sync,
)

SYNC_EVERY_S = 15.0
SYNCS = 120
PRE_COMMIT = ("ASYNC_JOB_VALIDATING", "ASYNC_JOB_VALIDATE_FAILED", "AUTO_PARAM_VALIDATE_SUCCESS")
LIFECYCLE = (*PRE_COMMIT, COMMIT_SUCCESS)


@dataclass(frozen=True)
class Observed:
    simulator: Simulator
    database: Path
    # The server's clock less ours, truly.
    skew_s: float
    # How far each project's measured offset is from the truth.
    offset_error_s: dict[str, float]

    def truth(self, project_id: str, job_id: str) -> SimJob:
        return self.simulator.world.get_job(project_id, job_id)

    def server_time(self, ours: datetime) -> float:
        return ours.timestamp() + self.skew_s


@pytest.fixture(scope="module", params=[0.0, 120.0], ids=["same-clock", "server-ahead"])
def observed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    """Half an hour of a busy world (a job every 30 s per project), synced every 15 s."""
    skew_s = float(request.param)
    settings = WorldSettings(
        seed=5,
        projects=default_projects(5, count=2),
        arrival_interval_s=30.0,
        retention_s=4 * 3600.0,
        clock_skew_s=skew_s,
    )
    server, simulator = start_simulator(settings)
    # A fixed moment, so that the same jobs move the same way on every run.
    simulator.clock.set(ANCHOR_2026 + 90 * 86400.0)
    tmp_path = tmp_path_factory.mktemp("truth")
    database = tmp_path / "history.duckdb"
    with server:
        config = settings_for(simulator, tmp_path)
        for _ in range(SYNCS):
            assert sync(simulator, config, database).all_ok
            simulator.clock.advance(SYNC_EVERY_S)
        build_marts(
            database,
            stuck_thresholds_s={},
            as_of=simulator.now(),
            configured_projects={p.project_id: p.region for p in config.projects},
            freshness_minutes=config.freshness_minutes,
        )
        assert_history_invariants(database)
        with duckdb.connect(str(database), read_only=True) as con:
            broken = mart_violations(con)
        assert not broken, describe_violations(broken)
        errors = query(
            database,
            "SELECT project_id, max(abs(server_clock_offset_s - ?)) FROM drs.sync_runs "
            "GROUP BY ALL",
            [skew_s],
        )
        # The Date header is to the second: the offset is known to within one.
        assert all(error <= 1.0 for _, error in errors)
        yield Observed(simulator, database, skew_s, dict(errors))


def entered(job: SimJob, status: str, by: float) -> float:
    """When the job last entered ``status`` at or before ``by`` (the server's clock)."""
    times = [at for at, s in job.timeline if s == status and at <= by]
    assert times, f"{job.async_job_id} never in {status} by {by}"
    return times[-1]


def test_every_transition_lies_within_its_bounds(observed: Observed) -> None:
    rows = query(
        observed.database,
        "SELECT project_id, async_job_id, from_status, to_status, not_before, not_after, "
        "create_time FROM drs.status_transitions JOIN drs.async_jobs "
        "USING (project_id, async_job_id)",
    )
    changes = creations = unknown = 0
    for project_id, job_id, from_status, to_status, not_before, not_after, created in rows:
        job = observed.truth(project_id, job_id)
        if from_status is not None:
            after, by = observed.server_time(not_before), observed.server_time(not_after)
            changed_at = entered(job, to_status, by)
            assert after < changed_at <= by, (job_id, to_status)
            assert job.status_at(after) == from_status
            changes += 1
        elif not_before is not None:
            # Created in the start status: not_before is its create_time as served (to
            # the second), moved onto our clock by the measured offset.
            assert to_status == VALIDATING
            error = observed.offset_error_s[project_id]
            served = created.timestamp()
            assert served <= job.create_time < served + 1
            assert abs(observed.server_time(not_before) - served) <= error
            creations += 1
        else:
            assert to_status != VALIDATING
            unknown += 1
    # The world did move, and the history began with jobs already under way.
    assert changes > 100 and creations > 50 and unknown > 50


def test_every_duration_contains_the_truth(observed: Observed) -> None:
    rows = query(
        observed.database,
        "SELECT project_id, async_job_id, metric, low_s, high_s, seconds, create_time "
        "FROM drs.duration_samples JOIN drs.async_jobs USING (project_id, async_job_id)",
    )
    measured: dict[str, int] = {}
    for project_id, job_id, metric, low_s, high_s, midpoint, created in rows:
        job = observed.truth(project_id, job_id)
        # Durations from create_time start at the served create_time, and carry the
        # error of the offset that put it on our clock.
        served, error = created.timestamp(), observed.offset_error_s[project_id]
        assert 0 <= low_s <= high_s and midpoint == (low_s + high_s) / 2
        if metric == "validation":
            assert job.timeline[0][1] == VALIDATING
            true_s = job.timeline[1][0] - served
            assert low_s - error <= true_s <= high_s + error, (job_id, metric)
        elif metric == "time_to_commit":
            true_s = entered(job, COMMIT_SUCCESS, float("inf")) - served
            assert low_s - error <= true_s <= high_s + error, (job_id, metric)
        else:
            measured_status = metric.removeprefix("dwell:")
            # Each dwell sample is one stay: find it among the job's true stays.
            stays = [
                (served if at == job.create_time else at, job.timeline[i + 1][0])
                for i, (at, status) in enumerate(job.timeline[:-1])
                if status == measured_status
            ]
            assert any(low_s - error <= end - start <= high_s + error for start, end in stays), (
                job_id,
                metric,
                low_s,
                high_s,
                stays,
            )
        measured[metric] = measured.get(metric, 0) + 1
    assert measured["validation"] > 50 and measured["time_to_commit"] > 5
    assert measured["dwell:ASYNC_JOB_VALIDATE_FAILED"] > 0


def test_the_bounds_are_as_sharp_as_the_syncs(observed: Observed) -> None:
    database = observed.database
    # A change seen by consecutive syncs is bounded to one sync interval.
    ((widest_change,),) = query(
        database,
        "SELECT max(epoch(not_after) - epoch(not_before)) FROM drs.status_transitions "
        "WHERE from_status IS NOT NULL",
    )
    assert widest_change == SYNC_EVERY_S
    # From the exact create_time, a duration is as sharp as its end: one interval;
    # a stay between two changes, two.
    resolutions = query(
        database,
        "SELECT DISTINCT metric LIKE 'dwell:%', resolution_s FROM drs.job_durations "
        "WHERE jobs > 0 AND metric NOT IN ('dwell:ASYNC_JOB_VALIDATING') ORDER BY ALL",
    )
    assert resolutions == [(False, SYNC_EVERY_S), (True, 2 * SYNC_EVERY_S)]


def test_stays_of_unknown_start_are_not_measured_and_unfinished_ones_are_counted(
    observed: Observed,
) -> None:
    database = observed.database
    # A job the first sync found was created before the history began: it may have
    # been in a later round already, so even a validating one's start is unknown.
    ((history_began,),) = query(database, "SELECT min(started_at) FROM drs.sync_runs")
    # Every later job was seen from its start: created after the sync before the one
    # that first saw it began (syncs are 15 s apart).
    transitions = query(
        database,
        "SELECT project_id, async_job_id, from_status, to_status, first_seen_at > ?, is_gone "
        "FROM drs.status_transitions JOIN drs.async_jobs USING (project_id, async_job_id) "
        "ORDER BY project_id, async_job_id, not_after",
        [history_began + timedelta(seconds=SYNC_EVERY_S / 2)],
    )
    stays: dict[tuple[str, str], list[tuple[str, bool, bool]]] = {}
    for project_id, job_id, from_status, status, from_start, is_gone in transitions:
        # A stay's start is known when a change into it was seen, or when it is the
        # first stay of a job seen from its start (in a status of the lifecycle).
        start_known = from_status is not None or (from_start and status in LIFECYCLE)
        stays.setdefault((project_id, job_id), []).append((status, start_known, is_gone))
    # What the censoring rules say, computed from the transitions alone.
    expected_samples: dict[tuple[str, str, str], int] = {}
    expected_in_progress: set[tuple[str, str, str]] = set()
    for key, job_stays in stays.items():
        for i, (status, start_known, is_gone) in enumerate(job_stays):
            ended = i < len(job_stays) - 1
            from_start = i == 0 and start_known
            if start_known and ended:
                metric = (*key, f"dwell:{status}")
                expected_samples[metric] = expected_samples.get(metric, 0) + 1
            # Validation ended by the first observation of a job seen from its start
            # further on; for one seen validating, when that stay ended.
            if from_start and (ended or status != VALIDATING):
                expected_samples[(*key, "validation")] = 1
            if not ended and not is_gone and status in PRE_COMMIT:
                if start_known:
                    expected_in_progress.add((*key, f"dwell:{status}"))
                if from_start and status == VALIDATING:
                    expected_in_progress.add((*key, "validation"))
    # Nothing seen from its start is left out: each such job is measured, in progress,
    # or left the list while validating.
    for key, job_stays in stays.items():
        status, start_known, is_gone = job_stays[0]
        if start_known:
            assert (
                (*key, "validation") in expected_samples
                or (*key, "validation") in expected_in_progress
                or (len(job_stays) == 1 and is_gone)
            ), key
    samples = query(
        database,
        "SELECT project_id, async_job_id, metric, count(*) FROM drs.duration_samples "
        "WHERE metric <> 'time_to_commit' GROUP BY ALL",
    )
    assert {(p, j, m): n for p, j, m, n in samples} == expected_samples
    in_progress = query(
        database,
        "SELECT project_id, async_job_id, metric, low_s, last_seen_at "
        "FROM drs.durations_in_progress JOIN drs.async_jobs USING (project_id, async_job_id)",
    )
    assert {(p, j, m) for p, j, m, *_ in in_progress if m != "time_to_commit"} == (
        expected_in_progress
    )
    # And the truth agrees: each was in its measured state when last seen.
    for project_id, job_id, metric, low_s, last_seen in in_progress:
        job = observed.truth(project_id, job_id)
        last_seen_s = observed.server_time(last_seen)
        status_then = job.status_at(last_seen_s)
        if metric == "validation":
            assert [s for at, s in job.timeline if at <= last_seen_s] == [VALIDATING]
        elif metric == "time_to_commit":
            assert status_then in PRE_COMMIT
        else:
            assert status_then == metric.removeprefix("dwell:")
        assert low_s >= 0
    assert len(expected_in_progress) > 10
