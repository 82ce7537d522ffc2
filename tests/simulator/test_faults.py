"""Every fault switch and the scripted queue, over real HTTP."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from drs_pipeline.simulator import (
    Faults,
    ManualClock,
    ScriptedFault,
    WorldSettings,
    build_simulator,
)
from tests.simulator.helpers import T0, TOKEN, Sim, list_path


def test_latency_is_added_and_requests_overlap(sim: Sim) -> None:
    sim.faults.latency_s = 0.3

    def one(_: int) -> float:
        started = time.perf_counter()
        with httpx.Client(base_url=sim.server.url, timeout=5) as client:
            r = client.get(list_path(sim.pid()), headers={"X-Auth-Token": TOKEN})
        assert r.status_code == 200
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(5) as pool:
        each = list(pool.map(one, range(5)))
    assert min(each) >= 0.3
    assert time.perf_counter() - started < 1.2  # five sleeps side by side, not in a row
    # Errors are delayed too.
    started = time.perf_counter()
    assert sim.get(token=None).status_code == 401
    assert time.perf_counter() - started >= 0.3


@pytest.mark.parametrize("retry_after", ["1", "0", None, "HTTP-DATE"])
def test_throttling(sim: Sim, retry_after: str | None) -> None:
    if retry_after == "HTTP-DATE":
        retry_after = email.utils.formatdate(time.time() + 3, usegmt=True)
    sim.faults.rate_429 = 1.0
    sim.faults.retry_after = retry_after
    r = sim.get()
    assert r.status_code == 429
    assert r.json()["error_code"] == "APIGW.0308"
    assert r.headers.get("retry-after") == retry_after
    assert "x-request-id" in r.headers
    sim.faults.rate_429 = 0.0
    assert sim.get().status_code == 200
    assert sim.app.stats.by_fault["429"] == 1


def test_server_errors(sim: Sim) -> None:
    sim.faults.rate_5xx = 1.0
    codes = set()
    for _ in range(30):
        r = sim.get()
        codes.add(r.status_code)
        assert r.json()["error_code"] == "APIGW.0601"
        assert "x-request-id" in r.headers
    assert codes == {500, 502, 503}


def test_random_faults_are_rates_and_reproducible(sim: Sim) -> None:
    def run(seed: int) -> list[int]:
        sim.app.faults = Faults(rate_429=0.3, rate_5xx=0.3, seed=seed)
        return [sim.get().status_code for _ in range(40)]

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    assert 200 in first and 429 in first and any(s >= 500 for s in first)


def test_malformed_bodies(sim: Sim) -> None:
    sim.faults.rate_malformed = 1.0
    kinds = set()
    for _ in range(30):
        r = sim.get(limit=3)
        assert r.status_code == 200
        try:
            body = r.json()
        except json.JSONDecodeError:
            kinds.add("truncated")
            continue
        if "total_count" not in body:
            kinds.add("no_total_count")
        elif not isinstance(body["jobs"], list):
            kinds.add("jobs_not_list")
        else:
            pytest.fail(f"well-formed body under rate_malformed=1: {body}")
    assert kinds == {"truncated", "no_total_count", "jobs_not_list"}
    assert sim.app.stats.by_fault["malformed"] == 30


def test_drift_shifts_the_list_between_pages(sim: Sim) -> None:
    sim.configure(WorldSettings(vanish_fraction=0.0))
    pid = sim.pid()
    before = {j["async_job_id"] for j in sim.list_all(pid, limit=1000)}
    sim.faults.drift_rate = 1.0
    sim.faults.reseed(3)
    # The first page never drifts.
    assert sim.get(pid, offset=0, limit=10).json()["total_count"] == len(before)
    assert sim.app.stats.by_fault["drift"] == 0
    ids = [j["async_job_id"] for j in sim.list_all(pid, limit=10)]
    still_there = {j.async_job_id for j in sim.world.list_jobs(pid, T0)}
    assert sim.app.stats.by_fault["drift"] >= 25
    # Arrivals at the top under desc repeat a row on the next page...
    assert len(ids) > len(set(ids))
    # ...and vanishing rows shift the rest back, so a live job is never seen.
    assert (before & still_there) - set(ids)
    assert before - still_there
    assert still_there - before
    # Arrivals belong to the project's own account, like every job of it.
    domain, users = sim.world.settings.domain_of(pid)
    arrived = [j for j in sim.world.list_jobs(pid, T0) if j.async_job_id in still_there - before]
    assert {j.domain_name for j in arrived} == {domain}
    assert {j.user_name for j in arrived} <= set(users)


def test_scripted_response(sim: Sim) -> None:
    sim.faults.script(
        ScriptedFault(status=503, headers={"Retry-After": "2"}, times=2),
        ScriptedFault(status=200, body=b'{"total_count": 3, "jobs": ['),
        ScriptedFault(status=400, body={"errorCode": "DRS.M00007", "errorMsg": "bad"}),
        ScriptedFault(status=418, body="teapot", headers={"Content-Type": "text/plain"}),
    )
    assert sim.faults.pending() == 4
    for _ in range(2):
        r = sim.get()
        assert r.status_code == 503
        assert r.json()["error_code"] == "APIGW.0601"
        assert r.headers["retry-after"] == "2"
    r = sim.get()
    assert r.status_code == 200 and r.content == b'{"total_count": 3, "jobs": ['
    assert sim.get().json() == {"errorCode": "DRS.M00007", "errorMsg": "bad"}
    r = sim.get()
    assert (r.status_code, r.text, r.headers["content-type"]) == (418, "teapot", "text/plain")
    assert "x-request-id" in r.headers
    assert sim.faults.pending() == 0
    assert sim.get().status_code == 200
    assert sim.app.stats.by_fault["scripted"] == 5


def test_scripted_faults_match_project_and_offset(sim: Sim) -> None:
    sim.faults.script(ScriptedFault(status=500, project_id=sim.pid(1), offset=20))
    assert sim.get(sim.pid(1), offset=0).status_code == 200
    assert sim.get(sim.pid(0), offset=20).status_code == 200
    assert sim.get(sim.pid(1), offset=20).status_code == 500
    assert sim.get(sim.pid(1), offset=20).status_code == 200


def test_scripted_faults_wait_for_a_valid_request(sim: Sim) -> None:
    sim.faults.script(ScriptedFault(status=502))
    assert sim.get(token=None).status_code == 401
    assert sim.get(limit=0).status_code == 400
    assert sim.faults.pending() == 1
    assert sim.get().status_code == 502


def test_drop(sim: Sim) -> None:
    sim.faults.script(ScriptedFault(kind="drop"))
    with pytest.raises(httpx.RemoteProtocolError):
        sim.get()
    assert sim.get().status_code == 200
    assert sim.app.stats.by_status[0] == 1
    assert sim.app.stats.by_fault["drop"] == 1


def test_stall_until_the_client_gives_up(sim: Sim) -> None:
    sim.faults.script(ScriptedFault(kind="stall", stall_s=10))
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        sim.client.get(list_path(sim.pid()), headers={"X-Auth-Token": TOKEN}, timeout=0.3)
    assert time.perf_counter() - started < 2
    assert sim.get().status_code == 200


def test_stall_sends_headers_then_part_of_the_body(sim: Sim) -> None:
    sim.faults.script(ScriptedFault(kind="stall", stall_s=0.3))
    with sim.client.stream("GET", list_path(sim.pid()), headers={"X-Auth-Token": TOKEN}) as r:
        assert r.status_code == 200
        assert "x-request-id" in r.headers
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()
    sim.faults.script(ScriptedFault(kind="stall", stall_s=0.1, status=503))
    with pytest.raises(httpx.RemoteProtocolError):
        sim.get()


def test_in_process_drop_and_stall_raise_what_httpx_would() -> None:
    app = build_simulator(WorldSettings(), clock=ManualClock(T0), tokens={TOKEN})
    app.faults.script(ScriptedFault(kind="drop"), ScriptedFault(kind="stall", stall_s=0.05))
    pid = app.world.projects[0].project_id

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get(list_path(pid), headers={"X-Auth-Token": TOKEN})

    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            asyncio.run(fetch())
    assert asyncio.run(fetch()).status_code == 200


def test_clear_switches_everything_off(sim: Sim) -> None:
    sim.faults.rate_5xx = 1.0
    sim.faults.script(ScriptedFault(status=500))
    sim.faults.clear()
    assert sim.faults.pending() == 0
    assert sim.get().status_code == 200
