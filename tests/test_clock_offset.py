"""The server's clock against ours: the Date header of each answer, and the offset
each project's sync records in ``drs.sync_runs.server_clock_offset_s``.

The syncs run against the simulator over loopback HTTP into a real DuckDB file.
Its clock is a ManualClock on a whole second that the sync reads too, so the
offsets are exact: a Date header names the server's second, and the half second
that centres it shows in every value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from drs_pipeline.config import Secret
from drs_pipeline.drs.auth import TokenAuth
from drs_pipeline.drs.client import DrsClient, Page, ProjectTarget
from drs_pipeline.drs.clock import parse_http_date, server_clock_offset_s
from drs_pipeline.simulator import ScriptedFault, WorldSettings
from drs_pipeline.warehouse.store import Warehouse

from .helpers import Simulator, query, settings_for, start_simulator, sync

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SKEW_S = 120.0


@pytest.fixture
def skewed_simulator() -> Iterator[Simulator]:
    """Scripted jobs only, on a server whose clock runs two minutes ahead of ours."""
    settings = WorldSettings(seed=3, streaming=False, projects=(), clock_skew_s=SKEW_S)
    server, handle = start_simulator(settings)
    with server:
        yield handle


# -- reading the Date header ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Sat, 28 Nov 2026 12:00:00 GMT",
        # The obsolete forms a recipient must still read (RFC 9110 5.6.7).
        "Saturday, 28-Nov-26 12:00:00 GMT",
        "Sat Nov 28 12:00:00 2026",
    ],
)
def test_every_form_of_http_date_reads_as_the_same_utc_instant(value: str) -> None:
    assert parse_http_date(value) == T0


@pytest.mark.parametrize(
    "value", [None, "", "yesterday", "Sat, 31 Feb 2026 12:00:00 GMT", "Sat, 28 Nov 2026 25:00 GMT"]
)
def test_a_missing_or_unreadable_date_is_none_never_an_error(value: str | None) -> None:
    assert parse_http_date(value) is None


# -- the offset of a project's pages ----------------------------------------------------


def page(fetched_at: datetime, server_date: datetime | None) -> Page:
    return Page(0, 0, [], fetched_at, None, server_date=server_date)


def test_the_offset_is_the_median_of_the_dated_pages_centred_on_their_second() -> None:
    pages = [
        page(T0, T0 + timedelta(seconds=120)),
        # One slow answer read long after the server dated it does not move the median.
        page(T0 + timedelta(seconds=30), T0 + timedelta(seconds=121)),
        page(T0 + timedelta(seconds=2, milliseconds=250), T0 + timedelta(seconds=122)),
        page(T0 + timedelta(seconds=3), None),
    ]
    assert server_clock_offset_s(pages) == 120.25
    assert server_clock_offset_s(pages[:2]) == (120.5 + 91.5) / 2
    assert server_clock_offset_s([page(T0, T0 - timedelta(seconds=7))]) == -6.5


def test_the_offset_is_taken_at_the_middle_of_each_requests_flight() -> None:
    # Clocks agree; the server stamped its answer (second 0, so 0.5 centred) while a
    # 2.4 s answer was in flight: read at its end alone, the offset would be -1.9.
    sent = T0 - timedelta(seconds=2, milliseconds=400)
    slow = Page(0, 0, [], T0, None, server_date=T0 - timedelta(seconds=2), requested_at=sent)
    assert server_clock_offset_s([slow]) == pytest.approx(-0.3)


def test_no_dated_page_is_no_offset() -> None:
    assert server_clock_offset_s([]) is None
    assert server_clock_offset_s([page(T0, None), page(T0, None)]) is None


# -- the client reads the header --------------------------------------------------------


def first_page(simulator: Simulator, project_id: str) -> Page:
    async def main() -> Page:
        async with DrsClient(auth=TokenAuth(Secret(simulator.token))) as client:
            return await client.fetch_page(
                ProjectTarget(project_id, simulator.url), offset=0, limit=10
            )

    return asyncio.run(main())


def test_a_page_keeps_the_servers_date_and_none_when_it_is_unreadable(
    simulator: Simulator,
) -> None:
    project_id = simulator.project_ids[0]
    simulator.clock.advance(0.75)
    assert first_page(simulator, project_id).server_date == simulator.now().replace(microsecond=0)
    simulator.faults.script(
        ScriptedFault(status=200, body={"total_count": 0, "jobs": []}, headers={"Date": "soon"})
    )
    assert first_page(simulator, project_id).server_date is None
    simulator.faults.no_date_header = True
    assert first_page(simulator, project_id).server_date is None


# -- each sync records it ---------------------------------------------------------------


def offsets(database: Path) -> dict[str, float | None]:
    return dict(query(database, "SELECT project_id, server_clock_offset_s FROM drs.sync_runs"))


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.0, SKEW_S + 0.5), (0.25, SKEW_S + 0.25), (0.75, SKEW_S - 0.25)]
)
def test_a_sync_records_how_far_ahead_the_servers_clock_is(
    skewed_simulator: Simulator, tmp_path: Path, database: Path, fraction: float, expected: float
) -> None:
    simulator = skewed_simulator
    first, second = simulator.project_ids[:2]
    for project_id in (first, second):
        for _ in range(3):
            simulator.world.add_job(project_id)
    simulator.clock.advance(fraction)
    settings = settings_for(simulator, tmp_path, [first, second], page_size=2)

    report = sync(simulator, settings, database)

    assert report.all_ok
    # Within half a second of the true skew, whatever our clock's fraction of a second.
    assert {r.run.project_id: r.run.server_clock_offset_s for r in report.projects} == {
        first: expected,
        second: expected,
    }
    assert offsets(database) == {first: expected, second: expected}
    # The jobs were created on the server's clock, ahead of our first sight of them;
    # the offset puts their create_time back before it.
    created = simulator.now() - timedelta(seconds=fraction) + timedelta(seconds=SKEW_S)
    assert query(
        database,
        "SELECT DISTINCT create_time, first_seen_at, "
        "create_time - to_microseconds((r.server_clock_offset_s * 1e6)::BIGINT) "
        "FROM drs.async_jobs JOIN drs.sync_runs r USING (project_id)",
    ) == [
        (created, simulator.now(), created - timedelta(seconds=expected)),
    ]


def test_a_server_on_our_clock_is_half_a_second_off_at_most(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    simulator.world.add_job(project_id)
    settings = settings_for(simulator, tmp_path, [project_id])

    assert sync(simulator, settings, database).all_ok

    assert offsets(database) == {project_id: 0.5}


def test_a_server_that_sends_no_date_records_null(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    simulator.world.add_job(project_id)
    simulator.faults.no_date_header = True
    settings = settings_for(simulator, tmp_path, [project_id])

    report = sync(simulator, settings, database)

    assert report.all_ok and report.projects[0].run.server_clock_offset_s is None
    assert offsets(database) == {project_id: None}


def test_a_failed_project_records_the_offset_of_the_pages_it_listed(
    skewed_simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    simulator = skewed_simulator
    listed, unknown = simulator.project_ids[0], "f" * 32
    jobs = [simulator.world.add_job(listed) for _ in range(10)]
    settings = settings_for(simulator, tmp_path, [listed, unknown])
    first = sync(simulator, settings, database)
    # Refused at its first page: no page, no offset.
    assert {r.run.project_id: r.run.server_clock_offset_s for r in first.projects} == {
        listed: SKEW_S + 0.5,
        unknown: None,
    }
    # Nine of ten jobs leave: the listing that shows it is listed again, and that second
    # listing is refused. The first one's page was read, and its Date counts.
    for job in jobs[1:]:
        simulator.world.vanish(listed, job.async_job_id)
    simulator.clock.advance(60)
    now = simulator.world.now()
    simulator.faults.script(
        ScriptedFault(
            status=200,
            body={"total_count": 1, "jobs": [jobs[0].record_at(now)]},
            project_id=listed,
            offset=0,
        ),
        ScriptedFault(status=403, project_id=listed, offset=0),
    )

    second = sync(simulator, settings, database)

    run = next(r.run for r in second.projects if r.run.project_id == listed)
    assert (run.outcome, run.pages, run.server_clock_offset_s) == ("failed", 1, SKEW_S + 0.5)
    assert "HTTP 403" in (run.error or "")
    assert query(
        database,
        "SELECT outcome, server_clock_offset_s FROM drs.sync_runs "
        "WHERE project_id = ? ORDER BY started_at",
        [listed],
    ) == [("ok", SKEW_S + 0.5), ("failed", SKEW_S + 0.5)]


def test_a_database_of_the_previous_schema_gains_the_column_on_the_next_sync(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    with Warehouse(database):
        pass
    # The table as the previous version wrote it, with a row of its own.
    with duckdb.connect(str(database)) as con:
        con.execute("ALTER TABLE drs.sync_runs DROP COLUMN server_clock_offset_s")
        con.execute(
            "INSERT INTO drs.sync_runs VALUES ('old', ?, ?, ?, 'ok', NULL, 1, 0, 0, 0, 0, 0, 0, 1)",
            [project_id, T0, T0],
        )
    simulator.world.add_job(project_id)
    settings = settings_for(simulator, tmp_path, [project_id])

    assert sync(simulator, settings, database).all_ok

    assert query(
        database,
        "SELECT sync_id = 'old', server_clock_offset_s FROM drs.sync_runs ORDER BY 1 DESC",
    ) == [(True, None), (False, 0.5)]
