"""The official SDK (huaweicloudsdkdrs 3.1.219, ``DrsClient.list_async_jobs``) as a
client of the simulator: what a real client sends, signed with AK/SK, and what it
parses must agree with the world the simulator lists.

The simulator runs as the real ``drs-pipeline simulator`` command, its world clock
frozen (``--frozen-at``), so the same world built here from the same seed and
speed is the expected answer. The secrets travel through environment variables.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdrs.v5 import DrsClient, ListAsyncJobsRequest, ListAsyncJobsResponse

from drs_pipeline.drs import statuses
from drs_pipeline.simulator import (
    ManualClock,
    SimulatorApp,
    SimulatorServer,
    WallClock,
    World,
    WorldSettings,
    build_simulator,
)
from drs_pipeline.simulator.gateway import AccessKey, AkSkGateway
from tests.simulator.helpers import T0, simulator_command

SEED, SPEED = 21, 60.0
SETTINGS = WorldSettings(seed=SEED, speed=SPEED)
AK_ENV, SK_ENV = "DRS_SIM_TEST_AK", "DRS_SIM_TEST_SK"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str, str]]:
    """(url, ak, sk) of a ``drs-pipeline simulator`` process accepting one AK/SK."""
    ak, sk = secrets.token_hex(10).upper(), secrets.token_hex(20)
    args = ("--seed", str(SEED), "--speed", str(SPEED), "--frozen-at", str(T0))
    auth = ("--ak-env", AK_ENV, "--sk-env", SK_ENV)
    with simulator_command(*args, *auth, env={AK_ENV: ak, SK_ENV: sk}) as url:
        yield url, ak, sk


def sdk(url: str, ak: str, sk: str, project_id: str) -> DrsClient:
    credentials = BasicCredentials(ak, sk, project_id)
    return DrsClient.new_builder().with_credentials(credentials).with_endpoints([url]).build()


def parsed(response: ListAsyncJobsResponse) -> tuple[int, list[dict[str, Any]]]:
    """What the SDK made of the body: its count and its AsyncJobResp objects."""
    return response.total_count, [job.to_dict() for job in response.jobs]


def world_records(k: int, **filters: Any) -> tuple[str, list[dict[str, Any]]]:
    world = World(SETTINGS, ManualClock(T0))
    project_id = world.projects[k].project_id
    return project_id, [j.record_at(T0) for j in world.list_jobs(project_id, T0, **filters)]


def test_paging_with_offset_and_limit(served: tuple[str, str, str]) -> None:
    url, ak, sk = served
    project_id, expected = world_records(0)
    client = sdk(url, ak, sk, project_id)
    seen: list[dict[str, Any]] = []
    requests = 0
    while True:
        total, jobs = parsed(
            client.list_async_jobs(ListAsyncJobsRequest(offset=len(seen), limit=50))
        )
        requests += 1
        assert total == len(expected)
        if not jobs:
            break
        seen += jobs
    assert seen == expected
    assert requests == len(expected) // 50 + 2
    assert 250 < len(expected) <= 289


@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
def test_sort_directions(served: tuple[str, str, str], sort_dir: str) -> None:
    url, ak, sk = served
    project_id, expected = world_records(1, sort_dir=sort_dir)
    request = ListAsyncJobsRequest(limit=1000, sort_key="create_time", sort_dir=sort_dir)
    response = sdk(url, ak, sk, project_id).list_async_jobs(request)
    assert parsed(response) == (len(expected), expected)


def test_filters(served: tuple[str, str, str]) -> None:
    url, ak, sk = served
    project_id, everything = world_records(2)
    client = sdk(url, ak, sk, project_id)

    def listed(**filters: str) -> tuple[int, list[dict[str, Any]]]:
        return parsed(client.list_async_jobs(ListAsyncJobsRequest(limit=1000, **filters)))

    for status in statuses.CURRENT:
        matching = [j for j in everything if j["status"] == status]
        assert listed(status=status) == (len(matching), matching)
    domain, users = SETTINGS.domain_of(project_id)
    assert listed(domain_name=domain) == (len(everything), everything)
    assert listed(domain_name="someone-else") == (0, [])
    for user in users:
        matching = [j for j in everything if j["user_name"] == user]
        assert matching
        assert listed(user_name=user) == (len(matching), matching)


def test_by_id(served: tuple[str, str, str]) -> None:
    url, ak, sk = served
    project_id, everything = world_records(3)
    client = sdk(url, ak, sk, project_id)
    for job in (everything[0], everything[17], everything[-1]):
        request = ListAsyncJobsRequest(async_job_id=job["async_job_id"])
        assert parsed(client.list_async_jobs(request)) == (1, [job])
    unknown = ListAsyncJobsRequest(async_job_id="00000000-0000-4000-8000-000000000000")
    assert parsed(client.list_async_jobs(unknown)) == (0, [])


def test_the_documentations_example_request(served: tuple[str, str, str]) -> None:
    """Every parameter given, the filters and sort_key/sort_dir empty."""
    url, ak, sk = served
    project_id, expected = world_records(0)
    request = ListAsyncJobsRequest(
        x_language="en-us",
        async_job_id="",
        status="",
        domain_name="",
        user_name="",
        offset=0,
        limit=10,
        sort_key="",
        sort_dir="",
    )
    response = sdk(url, ak, sk, project_id).list_async_jobs(request)
    assert parsed(response) == (len(expected), expected[:10])


def test_errors_reach_the_sdk_as_documented(served: tuple[str, str, str]) -> None:
    url, ak, sk = served
    project_id, _ = world_records(0)
    with pytest.raises(ClientRequestException) as over:
        sdk(url, ak, sk, project_id).list_async_jobs(ListAsyncJobsRequest(limit=1001))
    assert (over.value.status_code, over.value.error_code) == (400, "DRS.M00211")
    assert over.value.request_id
    with pytest.raises(ClientRequestException) as wrong_key:
        sdk(url, ak, "not-the-sk", project_id).list_async_jobs(ListAsyncJobsRequest())
    assert (wrong_key.value.status_code, wrong_key.value.error_code) == (401, "APIGW.0301")
    assert sk not in str(wrong_key.value)


class QueryLog:
    """The app, keeping the query string of every request: what the SDK really sent."""

    def __init__(self, app: SimulatorApp) -> None:
        self.app = app
        self.queries: list[bytes] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.queries.append(bytes(scope.get("query_string", b"")))
        await self.app(scope, receive, send)


def test_what_the_sdk_sends() -> None:
    """In process, to see the wire: the SDK sends the empty values (hence the server
    must read them as the defaults) and every request is one signed GET."""
    ak, sk = secrets.token_hex(10).upper(), secrets.token_hex(20)
    app = build_simulator(SETTINGS, clock=ManualClock(T0), tokens=set())
    app.gateway = AkSkGateway({ak: AccessKey(sk)}, WallClock())
    log = QueryLog(app)
    project_id, expected = world_records(0)
    with SimulatorServer(log) as server:  # type: ignore[arg-type]
        client = sdk(server.url, ak, sk, project_id)
        example = ListAsyncJobsRequest(
            async_job_id="", status="", domain_name="", user_name="", offset=0, limit=10,
            sort_key="", sort_dir="",
        )  # fmt: skip
        assert parsed(client.list_async_jobs(example)) == (len(expected), expected[:10])
        asc = ListAsyncJobsRequest(offset=5, limit=3, sort_dir="asc")
        assert parsed(client.list_async_jobs(asc)) == (len(expected), expected[::-1][5:8])
    assert log.queries == [
        b"async_job_id=&domain_name=&limit=10&offset=0&sort_dir=&sort_key=&status=&user_name=",
        b"limit=3&offset=5&sort_dir=asc",
    ]
    assert app.stats.requests == 2
    assert app.stats.by_status == {200: 2}
    assert app.gateway.stats.accepted == 2
    assert not app.gateway.stats.rejected
