"""The API over real HTTP on loopback: shape, paging, filters, errors, stats."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from drs_pipeline.drs import statuses
from drs_pipeline.simulator import (
    ManualClock,
    ScriptedFault,
    World,
    WorldSettings,
    build_simulator,
)
from tests.simulator.helpers import T0, TOKEN, Sim, list_path

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def records(sim: Sim, project_id: str, t: float, **filters: Any) -> list[dict[str, Any]]:
    return [j.record_at(t) for j in sim.world.list_jobs(project_id, t, **filters)]


def test_list_response(sim: Sim) -> None:
    r = sim.get()
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(r.headers["x-request-id"])
    assert r.http_version == "HTTP/1.1"
    body = r.json()
    assert set(body) == {"total_count", "jobs"}
    assert len(body["jobs"]) == 10  # default limit
    assert body["total_count"] == len(sim.world.list_jobs(sim.pid(), T0))
    assert body["jobs"] == records(sim, sim.pid(), T0)[:10]


def test_paging_both_directions(sim: Sim) -> None:
    pid = sim.pid(1)
    desc = sim.list_all(pid, limit=7)
    asc = sim.list_all(pid, limit=1000, sort_dir="asc", sort_key="create_time")
    assert desc == records(sim, pid, T0)
    assert asc == desc[::-1]
    total = len(desc)
    r = sim.get(pid, offset=total - 2, limit=5)
    assert r.json() == {"total_count": total, "jobs": desc[-2:]}
    r = sim.get(pid, offset=total + 10, limit=5, sort_dir="asc")
    assert r.json() == {"total_count": total, "jobs": []}
    r = sim.get(pid, offset=3, limit=1)
    assert r.json()["jobs"] == desc[3:4]


def test_filters(sim: Sim) -> None:
    pid = sim.pid()
    everything = records(sim, pid, T0)
    some = everything[5]
    r = sim.get(pid, async_job_id=some["async_job_id"])
    assert r.json() == {"total_count": 1, "jobs": [some]}
    for status in statuses.CURRENT:
        expected = [j for j in everything if j["status"] == status]
        assert sim.list_all(pid, status=status) == expected
    for name in ("domain_name", "user_name"):
        expected = [j for j in everything if j[name] == some[name]]
        assert sim.list_all(pid, **{name: some[name]}) == expected
    combined = sim.list_all(
        pid, status=some["status"], domain_name=some["domain_name"], user_name=some["user_name"]
    )
    assert some in combined
    assert sim.get(pid, status="NO_SUCH_STATUS").json() == {"total_count": 0, "jobs": []}
    # An empty value is no filter (undocumented; the lenient reading).
    assert sim.get(pid, status="").json()["total_count"] == len(everything)


@pytest.mark.parametrize(
    ("path", "method", "token", "params", "status", "code"),
    [
        (None, "GET", None, {}, 401, "APIGW.0301"),
        (None, "GET", "wrong", {}, 401, "APIGW.0301"),
        (None, "GET", "expired", {}, 401, "APIGW.0307"),
        ("/v5/" + "f" * 32 + "/batch-async-jobs", "GET", TOKEN, {}, 403, "DRS.M00261"),
        (None, "GET", TOKEN, {"limit": "1001"}, 400, "DRS.M00211"),
        (None, "GET", TOKEN, {"limit": "0"}, 400, "DRS.M00210"),
        (None, "GET", TOKEN, {"limit": "-1"}, 400, "DRS.M00210"),
        (None, "GET", TOKEN, {"limit": "ten"}, 400, "DRS.M00210"),
        (None, "GET", TOKEN, {"limit": "1.5"}, 400, "DRS.M00210"),
        (None, "GET", TOKEN, {"limit": ""}, 400, "DRS.M00210"),
        (None, "GET", TOKEN, {"offset": "-1"}, 400, "DRS.M00210"),
        (None, "GET", TOKEN, {"offset": "x"}, 400, "DRS.M00210"),
        (None, "GET", TOKEN, {"sort_key": "status"}, 400, "DRS.M00200"),
        (None, "GET", TOKEN, {"sort_dir": "up"}, 400, "DRS.M00200"),
        ("/v5/x/batch-async-jobs/extra", "GET", TOKEN, {}, 404, "APIGW.0101"),
        ("/v3/x/batch-async-jobs", "GET", TOKEN, {}, 404, "APIGW.0101"),
        ("/", "GET", TOKEN, {}, 404, "APIGW.0101"),
        (None, "POST", TOKEN, {}, 404, "APIGW.0101"),
        (None, "DELETE", TOKEN, {}, 404, "APIGW.0101"),
        # Check order: path before auth, auth before project, project before parameters.
        ("/nope", "GET", None, {}, 404, "APIGW.0101"),
        ("/v5/" + "f" * 32 + "/batch-async-jobs", "GET", None, {}, 401, "APIGW.0301"),
        (
            "/v5/" + "f" * 32 + "/batch-async-jobs",
            "GET",
            TOKEN,
            {"limit": "x"},
            403,
            "DRS.M00261",
        ),
        (None, "GET", "wrong", {"limit": "5000"}, 401, "APIGW.0301"),
    ],
)
def test_errors(
    sim: Sim,
    path: str | None,
    method: str,
    token: str | None,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    sim.app.expired_tokens.add("expired")
    headers = {} if token is None else {"X-Auth-Token": token}
    r = sim.client.request(method, path or list_path(sim.pid()), params=params, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(r.headers["x-request-id"])
    body = r.json()
    assert set(body) == {"error_code", "error_msg"}
    assert body["error_code"] == code
    assert body["error_msg"]
    assert sim.app.stats.by_status[status] == 1


def test_every_response_carries_one_date_from_the_world_clock(sim: Sim) -> None:
    sim.faults.script(ScriptedFault(status=503))
    responses = [sim.get(), sim.get(), sim.get(token=None), sim.client.get("/nowhere")]
    sim.faults.trickle_s = 0.0001
    responses.append(sim.get(limit=1))
    assert [r.status_code for r in responses] == [503, 200, 401, 404, 200]
    # One each: uvicorn's own Date, from the wall clock, would be a second one.
    assert [r.headers.get_list("date") for r in responses] == [
        ["Sat, 31 Jan 2026 03:25:45 GMT"]
    ] * 5
    sim.clock.advance(0.5)
    assert sim.get().headers["date"] == "Sat, 31 Jan 2026 03:25:46 GMT"
    sim.faults.no_date_header = True
    assert [sim.get().headers.get_list("date"), sim.get(token=None).headers.get_list("date")] == [
        [],
        [],
    ]


def test_a_skewed_server_lists_and_dates_on_its_own_clock(sim: Sim) -> None:
    world = sim.configure(WorldSettings(speed=60.0, clock_skew_s=120.0))
    ahead = [
        j.record_at(T0 + 120)
        for j in World(WorldSettings(speed=60.0)).list_jobs(sim.pid(), T0 + 120)
    ]
    assert ahead != records(sim, sim.pid(), T0), "two minutes bring new jobs"
    r = sim.get(limit=1000)
    assert r.json() == {"total_count": len(ahead), "jobs": ahead}
    assert r.headers["date"] == "Sat, 31 Jan 2026 03:27:45 GMT"
    assert world.add_job(sim.pid()).create_time == T0 + 120


def test_limit_bounds_and_big_pages(sim: Sim) -> None:
    assert len(sim.get(limit=1).json()["jobs"]) == 1
    body = sim.get(limit=1000).json()
    assert len(body["jobs"]) == body["total_count"]


def test_request_ids_differ(sim: Sim) -> None:
    seen = {sim.get().headers["x-request-id"] for _ in range(5)}
    seen.add(sim.get(token=None).headers["x-request-id"])
    assert len(seen) == 6


def test_tokens_can_change_while_serving(sim: Sim) -> None:
    assert sim.get().status_code == 200
    sim.app.tokens = {"rotated"}
    sim.app.expired_tokens = {TOKEN}
    assert sim.get().json()["error_code"] == "APIGW.0307"
    assert sim.get(token="rotated").status_code == 200


def test_scripted_and_malformed_records_are_served_as_given(sim: Sim) -> None:
    world = sim.configure(WorldSettings(streaming=False))
    pid = sim.pid()
    raw: list[dict[str, Any]] = [
        {"async_job_id": "bad-1", "status": None, "create_time": 1667803268000},
        {"async_job_id": "bad-2", "create_time": "yesterday", "extra": [1, 2]},
    ]
    world.add_job(pid, create_time=T0 - 30, raw=raw[0])
    world.add_job(pid, create_time=T0 - 20, raw=raw[1])
    good = world.add_job(pid, create_time=T0 - 10, time_format="epoch_ms", async_job_id="good")
    body = sim.get(pid).json()
    assert body["total_count"] == 3
    assert body["jobs"][0] == good.record_at(T0)
    assert body["jobs"][0]["create_time"] == str(int((T0 - 10) * 1000))
    assert body["jobs"][1:] == raw[::-1]
    assert sim.get(sim.pid(1)).json() == {"total_count": 0, "jobs": []}


def test_lifecycle_over_http(sim: Sim) -> None:
    pid = sim.pid()
    sim.configure(WorldSettings(vanish_fraction=0.0))
    newest = sim.get(pid, limit=1).json()["jobs"][0]
    statuses_seen = set()
    for _ in range(48):
        r = sim.get(pid, async_job_id=newest["async_job_id"])
        statuses_seen.add(r.json()["jobs"][0]["status"])
        sim.clock.advance(1800)
    assert len(statuses_seen) >= 2
    sim.clock.advance(2 * 86400)
    assert sim.get(pid, async_job_id=newest["async_job_id"]).json()["total_count"] == 0
    job = sim.world.add_job(pid)
    sim.clock.advance(5)
    sim.world.set_status(pid, job.async_job_id, statuses.VALIDATE_FAILED)
    got = sim.get(pid, async_job_id=job.async_job_id).json()["jobs"]
    assert got[0]["status"] == statuses.VALIDATE_FAILED


def test_stats(sim: Sim) -> None:
    sim.get(offset=0, limit=5)
    sim.get(sim.pid(2), offset=5, limit=5)
    sim.get(token="not-this-one")
    sim.get(limit=5000)
    stats = sim.app.stats
    assert stats.requests == 4
    assert stats.by_status == {200: 2, 401: 1, 400: 1}
    log = list(stats.log)
    assert (log[0].project_id, log[0].offset, log[0].limit, log[0].status) == (sim.pid(), 0, 5, 200)
    assert (log[1].project_id, log[1].offset, log[1].limit) == (sim.pid(2), 5, 5)
    assert log[2].status == 401 and log[2].offset is None
    assert "not-this-one" not in repr(stats) and TOKEN not in repr(stats)
    stats.reset()
    assert stats.requests == 0 and not stats.log


def test_in_process_transport_serves_the_same() -> None:
    clock = ManualClock(T0)
    app = build_simulator(WorldSettings(), clock=clock, tokens={TOKEN})
    pid = app.world.projects[0].project_id
    expected = [j.record_at(T0) for j in World(WorldSettings()).list_jobs(pid, T0)][:20]

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get(
                list_path(pid), params={"limit": 20}, headers={"X-Auth-Token": TOKEN}
            )

    r = asyncio.run(fetch())
    assert r.status_code == 200
    assert r.json()["jobs"] == expected
    assert REQUEST_ID.match(r.headers["x-request-id"])
    assert r.headers["date"] == "Sat, 31 Jan 2026 03:25:45 GMT"
