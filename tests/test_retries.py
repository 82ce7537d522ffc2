"""Retries and non-retries, over loopback HTTP against the simulator's faults.

The client is built directly so that the waits it asks for can be recorded
(and skipped): a fake sleep is the one seam these tests use.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from drs_pipeline.config import Secret
from drs_pipeline.drs.auth import TokenAuth
from drs_pipeline.drs.client import DrsClient, PagingPolicy, ProjectTarget
from drs_pipeline.drs.errors import DrsApiError, DrsError, DrsResponseError, DrsTransportError
from drs_pipeline.drs.listing import Listing, list_project
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.simulator import ScriptedFault

from .helpers import Simulator, query, settings_for, sync

RETRY = RetryPolicy(max_attempts=4, initial_delay_s=0.2, max_delay_s=1.0, max_total_wait_s=10.0)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def list_with(
    simulator: Simulator,
    *faults: ScriptedFault,
    retry: RetryPolicy = RETRY,
    timeout: float = 5.0,
    jobs: int = 5,
) -> tuple[Listing | DrsError, RecordingSleep]:
    project_id = simulator.project_ids[0]
    now = simulator.clock.now()
    for i in range(jobs):
        simulator.world.add_job(project_id, create_time=now - jobs + i)
    simulator.faults.script(*faults)
    sleep = RecordingSleep()

    async def main() -> Listing:
        async with DrsClient(
            auth=TokenAuth(Secret(simulator.token)),
            paging=PagingPolicy(page_size=2),
            retry=retry,
            sleep=sleep,
            timeout=httpx.Timeout(timeout),
        ) as client:
            return await list_project(client, ProjectTarget(project_id, simulator.url))

    try:
        return asyncio.run(main()), sleep
    except DrsError as error:
        return error, sleep


def assert_complete(outcome: Listing | DrsError) -> None:
    assert isinstance(outcome, Listing), f"listing failed: {outcome}"
    assert outcome.complete and len(outcome.seen_ids()) == 5


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("2", (2.0, 2.0)), ("0.5", (0.5, 0.5)), ("0", (0.1, 0.3)), (None, (0.1, 0.3))],
)
def test_429_honours_retry_after_seconds(
    simulator: Simulator, retry_after: str | None, expected: tuple[float, float]
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    outcome, sleep = list_with(simulator, ScriptedFault(status=429, headers=headers, offset=2))
    assert_complete(outcome)
    (delay,) = sleep.delays
    low, high = expected  # "0" and no header: our own backoff, 0.2 s +- 50 %
    assert low <= delay <= high


def test_429_honours_retry_after_http_date(simulator: Simulator) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    outcome, sleep = list_with(simulator, ScriptedFault(status=429, headers={"Retry-After": when}))
    assert_complete(outcome)
    (delay,) = sleep.delays
    assert 2.0 <= delay <= 4.0


def test_retry_after_beyond_the_budget_gives_up_at_once(simulator: Simulator) -> None:
    outcome, sleep = list_with(
        simulator, ScriptedFault(status=429, headers={"Retry-After": "3600"}, offset=4)
    )
    assert isinstance(outcome, DrsApiError) and outcome.status_code == 429
    assert sleep.delays == []
    assert "page offset 4" in str(outcome)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(simulator: Simulator, status: int) -> None:
    outcome, sleep = list_with(simulator, ScriptedFault(status=status, times=2))
    assert_complete(outcome)
    assert len(sleep.delays) == 2
    assert sleep.delays[0] < sleep.delays[1] * 1.5 + 0.01  # growing, give or take jitter


def test_dropped_connection_is_retried(simulator: Simulator) -> None:
    outcome, sleep = list_with(simulator, ScriptedFault(kind="drop", offset=2))
    assert_complete(outcome)
    assert len(sleep.delays) == 1


def test_response_stalling_mid_body_times_out_and_is_retried(simulator: Simulator) -> None:
    outcome, sleep = list_with(
        simulator, ScriptedFault(kind="stall", stall_s=3.0, offset=2), timeout=0.5
    )
    assert_complete(outcome)
    assert len(sleep.delays) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"total_count": 5, "jobs": [{"async_job_id": "x"',
        b"<html>gateway</html>",
        {"total_count": 5, "jobs": "not a list"},
        {"jobs": []},
        {"total_count": -1, "jobs": []},
        [1, 2, 3],
    ],
)
def test_malformed_200_bodies_are_retried(simulator: Simulator, body: object) -> None:
    outcome, sleep = list_with(simulator, ScriptedFault(status=200, body=body, offset=2))  # type: ignore[arg-type]
    assert_complete(outcome)
    assert len(sleep.delays) == 1


def test_malformed_body_that_persists_fails_naming_page_and_reason(simulator: Simulator) -> None:
    outcome, sleep = list_with(
        simulator,
        ScriptedFault(status=200, body={"jobs": "x", "total_count": 1}, offset=2, times=9),
    )
    assert isinstance(outcome, DrsResponseError)
    text = str(outcome)
    assert "page offset 2" in text and "jobs is not a list" in text and "after 4 attempts" in text
    assert outcome.request_id and outcome.request_id in text
    assert len(sleep.delays) == 3


def test_exhausted_retries_name_everything(simulator: Simulator) -> None:
    outcome, sleep = list_with(simulator, ScriptedFault(status=503, times=99))
    assert isinstance(outcome, DrsApiError)
    assert outcome.status_code == 503 and outcome.attempts == 4
    assert outcome.error_code == "APIGW.0601" and outcome.request_id
    text = str(outcome)
    for part in ("project ", "page offset 0", "HTTP 503", "APIGW.0601", outcome.request_id):
        assert part in text
    assert len(sleep.delays) == 3 and sum(sleep.delays) <= RETRY.max_total_wait_s


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "DRS.M00007"), (400, "DRS.10000001"), (403, "APIGW.0302"), (404, "APIGW.0101")],
)
def test_other_4xx_are_not_retried(simulator: Simulator, status: int, code: str) -> None:
    outcome, sleep = list_with(
        simulator,
        ScriptedFault(status=status, body={"error_code": code, "error_msg": "nope"}, times=9),
    )
    assert isinstance(outcome, DrsApiError)
    assert (outcome.status_code, outcome.error_code, outcome.error_msg) == (status, code, "nope")
    assert sleep.delays == [] and outcome.attempts == 1


def test_transport_error_when_nothing_listens(tmp_path: Path) -> None:
    sleep = RecordingSleep()

    async def main() -> None:
        async with DrsClient(auth=TokenAuth(Secret("t")), retry=RETRY, sleep=sleep) as client:
            await client.fetch_page(
                ProjectTarget("a" * 32, "http://127.0.0.1:9"), offset=0, limit=10
            )

    with pytest.raises(
        DrsTransportError,
        match=r"project a{32}, page offset 0: "
        r"could not connect to http://127\.0\.0\.1:9 \(ConnectError",
    ):
        asyncio.run(main())
    assert len(sleep.delays) == 3


def test_a_sync_survives_random_faults(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    """Every fault switch on at once, at rates a real gateway might show on a bad day."""
    project_id = simulator.project_ids[0]
    now = simulator.clock.now()
    for i in range(40):
        simulator.world.add_job(project_id, create_time=now - 40 + i)
    simulator.faults.rate_429 = 0.15
    simulator.faults.retry_after = "0"
    simulator.faults.rate_5xx = 0.15
    simulator.faults.rate_malformed = 0.1
    settings = settings_for(simulator, tmp_path, [project_id], page_size=3)
    quick = RetryPolicy(max_attempts=10, initial_delay_s=0.001, max_delay_s=0.01)

    report = sync(simulator, settings, database, retry=quick)

    assert report.all_ok, report.projects[0].run.error
    assert query(database, "SELECT count(*) FROM drs.async_jobs") == [(40,)]
    faults = simulator.app.stats.by_fault
    assert faults["429"] and faults["5xx"] and faults["malformed"]
