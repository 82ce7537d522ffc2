"""Matrix rows 3 and 4: bodies that are not the documented shape, and bad records.

tests/test_retries.py proves one malformed 200 is retried and one that persists
fails the listing; tests/test_sync.py lands five kinds of bad record. Here: every
shape of bad body in one sync, persistent ones failing their project with
nothing of it written while the others land, and every kind of bad record
(duplicates in a page, records that are not objects, every wrong type, huge and
unicode values, every bad time) beside good ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drs_pipeline.drs import statuses
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.simulator import ScriptedFault, WorldSettings
from drs_pipeline.simulator.model import default_projects

from ..helpers import (
    Simulator,
    assert_history_invariants,
    query,
    settings_for,
    start_simulator,
    sync,
)
from .helpers import RecordingSleep, add_jobs, ids, project_rows, sync_with

PAGE = 5
RETRY = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05)

# 200 bodies the client must not take for a page, and the reason it gives.
BAD_BODIES: dict[str, tuple[bytes | dict[str, Any] | list[Any], str]] = {
    "truncated": (b'{"total_count": 30, "jobs": [{"async_job_id": "x", "sta', "not JSON"),
    "html": (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
    "empty": (b"", "not JSON"),
    "not-utf8": (b'{"total_count": 1, "jobs": ["\xff\xfe"]}', "not JSON"),
    "list": ([{"async_job_id": "x"}], "expected a JSON object, got list"),
    "other-shape": ({"data": {"jobs": []}, "count": 0}, "total_count missing"),
    "no-total": ({"jobs": []}, "total_count missing"),
    "total-string": ({"total_count": "30", "jobs": []}, "total_count missing"),
    "total-bool": ({"total_count": True, "jobs": []}, "total_count missing"),
    "jobs-not-list": ({"total_count": 30, "jobs": {"0": {}}}, "jobs is not a list"),
    "jobs-null": ({"total_count": 30, "jobs": None}, "jobs is not a list"),
}


@pytest.fixture
def five_projects() -> Iterator[Simulator]:
    """Scripted jobs only, five projects: four to break and one to land."""
    settings = WorldSettings(seed=3, streaming=False, projects=default_projects(3, 5))
    server, handle = start_simulator(settings)
    with server:
        yield handle


def test_every_kind_of_malformed_200_once_is_retried_and_all_lands_once(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    a, b = simulator.project_ids[:2]
    expected = {a: add_jobs(simulator, a, 30), b: add_jobs(simulator, b, 15)}
    # A: pages 0..30 (the empty page after 30 full ones too); B: pages 0..15.
    slots = [(a, offset) for offset in range(0, 35, PAGE)] + [(b, o) for o in range(0, 20, PAGE)]
    assert len(slots) >= len(BAD_BODIES)
    faults = [
        ScriptedFault(status=200, body=body, project_id=project_id, offset=offset)
        for (project_id, offset), (body, _) in zip(slots, BAD_BODIES.values(), strict=False)
    ]
    simulator.faults.script(*faults)
    sleep = RecordingSleep()
    settings = settings_for(simulator, tmp_path, [a, b], page_size=PAGE)

    report = sync_with(simulator, settings, database, retry=RETRY, sleep=sleep)

    assert report.all_ok, [p.run.error for p in report.projects]
    for project_id, job_ids in expected.items():
        assert ids(database, project_id) == set(job_ids)
    assert simulator.faults.pending() == 0 and len(sleep.delays) == len(BAD_BODIES)
    assert query(database, "SELECT count(*) FROM drs.rejected_records") == [(0,)]
    assert_history_invariants(database)


@pytest.mark.parametrize("kinds", [["truncated", "other-shape", "jobs-not-list", "no-total"]])
def test_a_malformed_body_that_persists_fails_its_project_naming_page_and_reason(
    five_projects: Simulator, tmp_path: Path, database: Path, kinds: list[str]
) -> None:
    simulator = five_projects
    good, *bad = simulator.project_ids
    assert len(bad) == len(kinds)
    jobs = {project_id: add_jobs(simulator, project_id, 12) for project_id in simulator.project_ids}
    for project_id in simulator.project_ids:  # a rejected record in every project
        simulator.world.add_job(project_id, async_job_id=f"bad-{project_id}", raw={"x": 1})
    settings = settings_for(simulator, tmp_path, page_size=PAGE)
    assert sync(simulator, settings, database).all_ok
    before = {project_id: project_rows(database, project_id) for project_id in bad}
    for project_id, job_ids in jobs.items():  # what an ok sync would write
        simulator.world.set_status(project_id, job_ids[0], statuses.COMMIT_SUCCESS)
        simulator.world.vanish(project_id, job_ids[1])
    simulator.clock.advance(60)
    for project_id, kind in zip(bad, kinds, strict=True):
        body = BAD_BODIES[kind][0]
        simulator.faults.script(
            ScriptedFault(status=200, body=body, project_id=project_id, offset=5, times=99)
        )

    report = sync_with(simulator, settings, database, retry=RETRY, sleep=RecordingSleep())

    results = {r.run.project_id: r for r in report.projects}
    for project_id, kind in zip(bad, kinds, strict=True):
        result = results[project_id]
        error = result.run.error or ""
        assert result.run.outcome == "failed"
        prefix = f"project {project_id}, page offset 5: malformed response body: "
        assert prefix + BAD_BODIES[kind][1] in error, error
        assert "after 3 attempts" in error
        assert result.request_id and f"X-Request-Id {result.request_id}" in error
        assert project_rows(database, project_id) == before[project_id], "nothing written"
    assert results[good].run.outcome == "ok" and results[good].run.gone_jobs == 1
    assert results[good].run.rejected_records == 1
    assert_history_invariants(database)


# -- bad records ---------------------------------------------------------------------------

BASE = {
    "status": statuses.VALIDATING,
    "domain_name": "tenant",
    "user_name": "user",
    "create_time": "2026-03-01T00:00:00Z",
}

# Records that land, exactly as given: unicode of every kind, the longest allowed
# value, both time formats with offsets and fractions, extra fields.
GOOD_RECORDS: dict[str, dict[str, Any]] = {
    "ok-unicode-😀": {
        **BASE,
        "status": "未知状态",
        "domain_name": "租户-אבג-ü",
        "user_name": "zero\u200bwidth-e\u0301",
        "create_time": "2026-03-01T08:00:00+08:00",
    },
    "ok-nul": {**BASE, "user_name": "nul\u0000inside"},
    "ok-256": {**BASE, "domain_name": "d" * 256},
    "ok-epoch": {**BASE, "create_time": "1721897321317"},
    "ok-fraction": {**BASE, "create_time": "2026-03-01T00:00:00.123456789+0000"},
    "ok-extra": {**BASE, "extra": {"nested": [1, 2]}, "n": 1},
    "ok-legacy": {**BASE, "status": "ASYNC_JOB_COMPLETED"},
}

# Records that must be rejected, and a word of the reason each must give.
BAD_RECORDS: dict[str, tuple[Any, str]] = {
    "no-status": ({k: v for k, v in BASE.items() if k != "status"}, "status is missing"),
    "null-domain": ({**BASE, "domain_name": None}, "domain_name is missing"),
    "int-status": ({**BASE, "status": 3}, "status is not a string"),
    "bool-domain": ({**BASE, "domain_name": True}, "domain_name is not a string"),
    "dict-user": ({**BASE, "user_name": {"name": "x"}}, "user_name is not a string"),
    "number-time": ({**BASE, "create_time": 1721897321317}, "create_time is not a string"),
    "empty-status": ({**BASE, "status": "  "}, "status is empty"),
    "huge-user": ({**BASE, "user_name": "u" * 1_000_000}, "user_name is over 256"),
    "word-time": ({**BASE, "create_time": "yesterday"}, "create_time is not ISO-8601"),
    "naive-time": ({**BASE, "create_time": "2026-03-01T00:00:00"}, "create_time is not ISO"),
    "feb-30": ({**BASE, "create_time": "2026-02-30T00:00:00Z"}, "create_time is not ISO"),
    "negative-epoch": ({**BASE, "create_time": "-1721897321317"}, "create_time is not ISO"),
    "float-epoch": ({**BASE, "create_time": "1721897321317.5"}, "create_time is not ISO"),
    "before-2000": ({**BASE, "create_time": "1999-12-31T23:59:59Z"}, "outside 2000..2100"),
    "year-2100": ({**BASE, "create_time": "2100-01-01T00:00:00Z"}, "outside 2000..2100"),
    "epoch-zero": ({**BASE, "create_time": "0"}, "outside 2000..2100"),
    "epoch-far": ({**BASE, "create_time": "9999999999999999"}, "outside 2000..2100"),
}
# Records without a usable id, served as they are.
ANONYMOUS: list[tuple[Any, str]] = [
    ("a string", "record is not a JSON object"),
    (42, "record is not a JSON object"),
    ([1, 2], "record is not a JSON object"),
    ({**BASE, "async_job_id": ""}, "async_job_id is empty"),
    ({**BASE, "async_job_id": "i" * 257}, "async_job_id is over 256"),
    ({**BASE, "async_job_id": ["x"]}, "async_job_id is not a string"),
]


def test_bad_records_are_kept_aside_with_reasons_and_good_ones_land_verbatim(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    world = simulator.world
    project_id = simulator.project_ids[0]
    plain = add_jobs(simulator, project_id, 3)
    for job_id, record in GOOD_RECORDS.items():
        world.add_job(project_id, async_job_id=job_id, raw={"async_job_id": job_id, **record})
    for job_id, (record, _) in BAD_RECORDS.items():
        world.add_job(project_id, async_job_id=job_id, raw={"async_job_id": job_id, **record})
    for number, (record, _) in enumerate(ANONYMOUS):
        world.add_job(project_id, async_job_id=f"anonymous-{number}", raw=record)
    # The same id twice in one page: the API contradicting itself. The first is kept.
    world.add_job(project_id, async_job_id="dup-1", raw={"async_job_id": "dup", **BASE})
    world.add_job(
        project_id,
        async_job_id="dup-2",
        raw={"async_job_id": "dup", **BASE, "status": statuses.COMMIT_SUCCESS},
    )
    settings = settings_for(simulator, tmp_path, [project_id], page_size=1000)

    report = sync(simulator, settings, database)

    run = report.projects[0].run
    rejected = query(database, "SELECT record, reason FROM drs.rejected_records")
    assert run.outcome == "ok", run.error
    assert run.rejected_records == len(rejected) == len(BAD_RECORDS) + len(ANONYMOUS) + 1
    assert ids(database) == {*plain, *GOOD_RECORDS, "dup"}
    stored = {
        row[0]: row[1:]
        for row in query(
            database, "SELECT async_job_id, status, domain_name, user_name FROM drs.async_jobs"
        )
    }
    for job_id, record in GOOD_RECORDS.items():
        assert stored[job_id] == (record["status"], record["domain_name"], record["user_name"])
    assert stored["dup"][0] == statuses.VALIDATING, "the first of the duplicates"
    # Each bad record is kept as received (as JSON), with the reason naming the field.
    reasons = {record: reason for record, reason in rejected}
    records = [json.loads(record) for record in reasons]
    expected = [
        ({"async_job_id": job_id, **record}, why) for job_id, (record, why) in BAD_RECORDS.items()
    ]
    expected += ANONYMOUS
    expected.append(
        ({"async_job_id": "dup", **BASE, "status": statuses.COMMIT_SUCCESS}, "duplicate")
    )
    for record, why in expected:
        assert record in records, f"not kept: {str(record)[:80]}"
        reason = reasons[next(r for r in reasons if json.loads(r) == record)]
        assert reason.startswith("page offset 0: ")
        assert why in reason, (why, reason)
    assert_history_invariants(database)

    # A rejected record is still a job the API listed: never marked gone for it, and a
    # sync that sees the same page again changes nothing.
    simulator.clock.advance(60)
    again = sync(simulator, settings, database).projects[0].run
    assert again.outcome == "ok", again.error
    assert (again.new_jobs, again.changed_jobs, again.gone_jobs) == (0, 0, 0)
    assert ids(database, gone=True) == set()
