"""What the API documentation leaves open, as the simulator plays it, over real HTTP.

Each switch of faults.py's third layer (and the tied world of stream.py) against
the session's loopback server; the expected rows come from the same world in
process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from drs_pipeline.drs import statuses
from drs_pipeline.simulator import (
    Faults,
    ManualClock,
    ScriptedFault,
    SimulatorApp,
    SimulatorServer,
    WorldSettings,
    build_simulator,
)
from tests.simulator.helpers import T0, TOKEN, Sim, list_path

EMPTY = {"total_count": 0, "jobs": []}


def records(sim: Sim, project_id: str, **filters: Any) -> list[dict[str, Any]]:
    return [j.record_at(T0) for j in sim.world.list_jobs(project_id, T0, **filters)]


def ids(body: dict[str, Any]) -> list[str]:
    return [j["async_job_id"] for j in body["jobs"]]


def second(record: dict[str, Any], sim: Sim, project_id: str) -> int:
    return math.floor(sim.world.get_job(project_id, record["async_job_id"]).create_time)


# -- max_page ---------------------------------------------------------------------------


def test_max_page_serves_fewer_rows_than_asked(sim: Sim) -> None:
    pid = sim.pid()
    everything = records(sim, pid)
    sim.faults.max_page = 3
    body = sim.get(pid, limit=10).json()
    assert body == {"total_count": len(everything), "jobs": everything[:3]}
    # Over the documented-nowhere 1000: no 400 while the server caps the page itself.
    assert sim.get(pid, limit=5000, offset=4).json()["jobs"] == everything[4:7]
    assert sim.get(pid, limit=2).json()["jobs"] == everything[:2]
    assert sim.get(pid, limit=0).json()["error_code"] == "DRS.M00210"
    # Paging on by what came back reaches every job, three at a time.
    assert sim.list_all(pid, limit=1000) == everything
    pages = len(everything) // 3 + 2  # full pages, the short last one, the empty one
    assert sim.app.stats.requests == 4 + pages
    # The log keeps the limit as asked.
    assert {r.limit for r in list(sim.app.stats.log)[4:]} == {1000}
    sim.faults.max_page = None
    assert sim.get(pid, limit=1001).json()["error_code"] == "DRS.M00211"


def test_max_page_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Faults(max_page=0)


# -- ties ---------------------------------------------------------------------------------


def tied_world(sim: Sim, **changes: Any) -> str:
    sim.configure(WorldSettings(tie_share=0.8, vanish_fraction=0.0, **changes))
    return sim.pid()


def tie_groups(jobs: list[dict[str, Any]], sim: Sim, pid: str) -> list[list[str]]:
    """Runs of listed jobs in one second, in listing order."""
    return [
        [j["async_job_id"] for j in group]
        for _, group in itertools.groupby(jobs, key=lambda j: second(j, sim, pid))
    ]


def test_ties_are_ordered_by_id_without_random_ties(sim: Sim) -> None:
    pid = tied_world(sim)
    asc = sim.list_all(pid, limit=7, sort_dir="asc")
    desc = sim.list_all(pid, limit=7)
    assert desc == asc[::-1] == records(sim, pid)
    groups = tie_groups(asc, sim, pid)
    assert max(len(g) for g in groups) >= 4
    assert all(g == sorted(g) for g in groups)
    # The served create_time is one string per group.
    for _, group in itertools.groupby(asc, key=lambda j: second(j, sim, pid)):
        assert len({j["create_time"] for j in group if "T" in j["create_time"]}) <= 1
    # Every request the same.
    assert sim.get(pid, limit=50).json() == sim.get(pid, limit=50).json()


def test_random_ties_reorder_groups_on_every_request(sim: Sim) -> None:
    pid = tied_world(sim)
    asc = records(sim, pid, sort_dir="asc")
    groups = tie_groups(asc, sim, pid)
    start = next(i for i, g in enumerate(groups) if len(g) >= 4)
    offset = sum(len(g) for g in groups[:start]) + 1  # inside the group
    group = groups[start]
    sim.faults.random_ties = True
    sim.faults.reseed(5)
    pages = [ids(sim.get(pid, offset=offset, limit=2, sort_dir="asc").json()) for _ in range(20)]
    assert all(set(page) <= set(group) for page in pages)
    assert len({tuple(page) for page in pages}) > 1
    # Across requests, the window saw more of the group than its two rows.
    assert len(set(itertools.chain(*pages))) > 2
    assert sim.app.stats.requests == 20


def test_random_ties_make_offset_paging_skip_and_repeat(sim: Sim) -> None:
    pid = tied_world(sim)
    everything = records(sim, pid)
    sim.faults.random_ties = True
    for sort_dir in ("desc", "asc"):
        sim.faults.reseed(11)
        seen = sim.list_all(pid, limit=7, sort_dir=sort_dir)
        got = [j["async_job_id"] for j in seen]
        assert len(got) == len(everything)
        assert len(set(got)) < len(got)  # repeated
        assert {j["async_job_id"] for j in everything} - set(got)  # skipped
        # Seconds stay in order: only the order inside a second is random.
        seconds = [second(j, sim, pid) for j in seen]
        assert seconds == sorted(seconds, reverse=sort_dir == "desc")
        assert all(j in everything for j in seen)


def test_random_ties_replay_from_the_seed(sim: Sim) -> None:
    pid = tied_world(sim)

    def run() -> list[list[str]]:
        sim.faults.reseed(3)
        return [ids(sim.get(pid, offset=o, limit=9).json()) for o in range(0, 60, 9)]

    sim.faults.random_ties = True
    first = run()
    assert run() == first
    sim.faults.random_ties = False
    assert run() != first


def test_random_ties_in_filtered_listings(sim: Sim) -> None:
    pid = tied_world(sim)
    domain, users = sim.world.settings.domain_of(pid)
    sim.faults.random_ties = True
    sim.faults.reseed(2)
    for filters in ({"user_name": users[0]}, {"domain_name": domain}):
        for sort_dir in ("asc", "desc"):
            expected = records(sim, pid, sort_dir=sort_dir, **filters)
            whole = [
                sim.get(pid, limit=1000, sort_dir=sort_dir, **filters).json() for _ in range(5)
            ]
            assert all(b["total_count"] == len(expected) for b in whole)
            # The same jobs, second by second; a different order within seconds.
            for body in whole:
                assert sorted(ids(body)) == sorted(j["async_job_id"] for j in expected)
                seconds = [second(j, sim, pid) for j in body["jobs"]]
                assert seconds == sorted(seconds, reverse=sort_dir == "desc")
            assert len({tuple(ids(b)) for b in whole}) > 1


def test_scripted_jobs_in_one_second_tie(sim: Sim) -> None:
    world = sim.configure(WorldSettings(streaming=False))
    pid = sim.pid()
    base = math.floor(T0) - 100.0  # a whole second
    tied = [world.add_job(pid, create_time=base + 0.1 * k + 0.05) for k in range(6)]
    before = world.add_job(pid, create_time=base - 1, async_job_id="before")
    after = world.add_job(pid, create_time=base + 1, async_job_id="after")
    by_time = [j.async_job_id for j in sorted(tied, key=lambda j: j.create_time)]
    assert ids(sim.get(pid, sort_dir="asc").json()) == ["before", *by_time, "after"]
    sim.faults.random_ties = True
    orders = set()
    for _ in range(10):
        got = ids(sim.get(pid, sort_dir="asc").json())
        assert (got[0], got[-1]) == (before.async_job_id, after.async_job_id)
        assert sorted(got[1:-1]) == sorted(by_time)
        orders.add(tuple(got[1:-1]))
    assert len(orders) > 1


# -- empty listings ---------------------------------------------------------------------


def test_empty_first_listing_once_per_project(sim: Sim) -> None:
    first, other = sim.pid(0), sim.pid(1)
    full = sim.get(first).json()
    sim.faults.empty_first_listing = True
    # Filtered, by-id and offset > 0 requests are not the first listing and do not use it up.
    some = full["jobs"][0]
    assert sim.get(first, async_job_id=some["async_job_id"]).json()["total_count"] == 1
    assert sim.get(first, status=some["status"]).json()["total_count"] > 0
    assert sim.get(first, offset=1).json()["jobs"] == records(sim, first)[1:11]
    assert sim.get(first).json() == EMPTY
    assert sim.get(first).json() == full
    assert sim.get(other, sort_dir="asc", limit=5).json() == EMPTY
    assert sim.get(other).json()["total_count"] > 0
    assert sim.app.stats.by_fault == {"empty": 2}
    # Setting it again arms it again.
    sim.faults.empty_first_listing = True
    assert sim.get(first).json() == EMPTY
    assert sim.get(first).json() == full
    sim.faults.empty_first_listing = False
    assert sim.get(other).json()["total_count"] > 0
    assert sim.app.stats.by_fault == {"empty": 3}


def test_empty_listings_count_down_across_projects(sim: Sim) -> None:
    sim.faults.empty_listings = 2
    assert sim.get(sim.pid(0)).json() == EMPTY
    assert sim.get(sim.pid(0), status=statuses.COMMIT_SUCCESS).json()["total_count"] > 0
    assert sim.get(sim.pid(2)).json() == EMPTY
    assert sim.get(sim.pid(2)).json()["total_count"] > 0
    assert sim.faults.empty_listings == 0
    # With the first-listing switch: one glitch each, the first listing's first.
    sim.faults.empty_first_listing = True
    sim.faults.empty_listings = 1
    pid = sim.pid(3)
    total = len(records(sim, pid))
    assert [sim.get(pid).json()["total_count"] for _ in range(3)] == [0, 0, total]
    assert sim.app.stats.by_fault == {"empty": 4}


def test_scripted_faults_come_before_an_empty_listing(sim: Sim) -> None:
    sim.faults.empty_first_listing = True
    sim.faults.script(ScriptedFault(status=503))
    assert sim.get().status_code == 503
    assert sim.get().json() == EMPTY


# -- the id filter ----------------------------------------------------------------------


def test_ignore_id_filter(sim: Sim) -> None:
    pid = sim.pid()
    everything = records(sim, pid)
    sim.faults.ignore_id_filter = True
    for job_id in (everything[7]["async_job_id"], "no-such-job"):
        body = sim.get(pid, async_job_id=job_id, limit=5).json()
        assert body == {"total_count": len(everything), "jobs": everything[:5]}
    # The other filters still apply.
    status = everything[7]["status"]
    expected = [j for j in everything if j["status"] == status]
    body = sim.get(pid, async_job_id="no-such-job", status=status, limit=1000).json()
    assert body == {"total_count": len(expected), "jobs": expected}


def test_unknown_id_error(sim: Sim) -> None:
    pid = sim.pid()
    everything = records(sim, pid)
    known = everything[3]
    sim.faults.unknown_id_error = True
    r = sim.get(pid, async_job_id="5c7d0a1e-0000-4000-8000-000000000000")
    assert r.status_code == 400
    assert r.json()["error_code"] == "DRS.10000010"
    assert r.json()["error_msg"]
    assert "x-request-id" in r.headers
    assert sim.get(pid, async_job_id=known["async_job_id"]).json() == {
        "total_count": 1,
        "jobs": [known],
    }
    # Listed but filtered out by another filter: an empty answer, not "does not exist".
    other = next(s for s in statuses.CURRENT if s != known["status"])
    body = sim.get(pid, async_job_id=known["async_job_id"], status=other).json()
    assert body == EMPTY
    # A job that vanished is no longer listed.
    sim.world.vanish(pid, known["async_job_id"])
    assert sim.get(pid, async_job_id=known["async_job_id"]).status_code == 400
    # Ignoring the id filter wins: there is no id to be unknown.
    sim.faults.ignore_id_filter = True
    assert sim.get(pid, async_job_id="nope").status_code == 200
    assert sim.app.stats.by_status == {400: 2, 200: 3}
    assert sim.app.stats.by_fault == {"unknown_id": 2}


# -- total_count, offset ----------------------------------------------------------------


def test_total_count_is_forced_on_every_list_answer(sim: Sim) -> None:
    pid = sim.pid()
    everything = records(sim, pid)
    sim.faults.total_count = 12345
    assert sim.get(pid, limit=4).json() == {"total_count": 12345, "jobs": everything[:4]}
    some = everything[2]
    assert sim.get(pid, async_job_id=some["async_job_id"]).json() == {
        "total_count": 12345,
        "jobs": [some],
    }
    assert sim.get(pid, status="NO_SUCH_STATUS").json() == {"total_count": 12345, "jobs": []}
    assert sim.get(pid, offset=10_000).json() == {"total_count": 12345, "jobs": []}
    sim.faults.total_count = 0
    assert sim.get(pid, limit=2).json() == {"total_count": 0, "jobs": everything[:2]}


def test_ignore_offset_serves_the_first_page_every_time(sim: Sim) -> None:
    pid = sim.pid()
    everything = records(sim, pid)
    sim.faults.ignore_offset = True
    for offset in (0, 10, 250, 10_000):
        body = sim.get(pid, offset=offset, limit=10).json()
        assert body == {"total_count": len(everything), "jobs": everything[:10]}
    assert sim.get(pid, offset=5, limit=3, sort_dir="asc").json()["jobs"] == everything[::-1][:3]
    # The log keeps the offset as asked.
    assert [r.offset for r in sim.app.stats.log] == [0, 10, 250, 10_000, 5]


# -- sort parameters --------------------------------------------------------------------


def test_empty_sort_parameters_mean_the_defaults(sim: Sim) -> None:
    pid = sim.pid()
    # The documentation's example request, verbatim in shape.
    r = sim.client.get(
        list_path(pid) + "?async_job_id=&status=&domain_name=&user_name=&offset=0&limit=10"
        "&sort_key=&sort_dir=",
        headers={"X-Auth-Token": TOKEN},
    )
    assert r.status_code == 200
    assert r.json() == {"total_count": len(records(sim, pid)), "jobs": records(sim, pid)[:10]}
    assert sim.get(pid, sort_key="", sort_dir="asc").json()["jobs"] == records(sim, pid)[::-1][:10]
    assert sim.get(pid, sort_key="name").json()["error_code"] == "DRS.M00200"
    assert sim.get(pid, sort_dir="sideways").json()["error_code"] == "DRS.M00200"


# -- trickle ----------------------------------------------------------------------------


class Watched:
    """The app, with a count of what it sent and a flag for when it returned: how a
    test sees the server give up on a trickle."""

    def __init__(self, app: SimulatorApp) -> None:
        self.app = app
        self.bodies = 0
        self.returned = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.bodies += 1
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            if scope["type"] == "http":
                self.returned.set()


@pytest.fixture
def trickling() -> Iterator[tuple[Watched, str]]:
    app = build_simulator(WorldSettings(), clock=ManualClock(T0), tokens={TOKEN})
    watched = Watched(app)
    server = SimulatorServer(watched)  # type: ignore[arg-type]
    with server:
        yield watched, server.url


def test_trickle_sends_headers_then_the_body_byte_by_byte(trickling: tuple[Watched, str]) -> None:
    watched, url = trickling
    app = watched.app
    pid = app.world.projects[0].project_id
    headers = {"X-Auth-Token": TOKEN}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        normal = client.get(list_path(pid), params={"limit": 1}).content
        app.faults.trickle_s = 0.001
        with client.stream("GET", list_path(pid), params={"limit": 1}) as r:
            assert r.status_code == 200
            assert r.headers["content-length"] == str(len(normal))
            assert "x-request-id" in r.headers
            body = r.read()
    assert body == normal
    # One body message per byte (the normal answer is one message).
    assert watched.bodies == 1 + len(normal)
    assert app.stats.requests == 2


def test_trickle_stops_when_the_client_disconnects(trickling: tuple[Watched, str]) -> None:
    watched, url = trickling
    app = watched.app
    pid = app.world.projects[0].project_id
    app.faults.trickle_s = 0.05  # a 1000-row body would take hours
    with (
        httpx.Client(base_url=url, headers={"X-Auth-Token": TOKEN}, timeout=10) as client,
        client.stream("GET", list_path(pid), params={"limit": 1000}) as r,
    ):
        length = int(r.headers["content-length"])
        first = next(r.iter_raw(1))
        assert first == b"{"
    # The server noticed the closed connection and stopped sending.
    assert watched.returned.wait(10)
    assert watched.bodies < length / 10


def test_trickle_in_process() -> None:
    app = build_simulator(WorldSettings(), clock=ManualClock(T0), tokens={TOKEN})
    pid = app.world.projects[0].project_id

    async def fetch(limit: int) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get(
                list_path(pid), params={"limit": limit}, headers={"X-Auth-Token": TOKEN}
            )

    normal = asyncio.run(fetch(1))
    app.faults.trickle_s = 0.001
    trickled = asyncio.run(fetch(1))
    assert (trickled.status_code, trickled.content) == (200, normal.content)

    # A client that gives up cancels the trickle at once.
    app.faults.trickle_s = 0.05

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(fetch(1000), 0.2)

    asyncio.run(give_up())
    assert app.stats.requests == 3


# -- clear ------------------------------------------------------------------------------


def test_clear_turns_every_switch_off(sim: Sim) -> None:
    faults = sim.faults
    changed = {
        "max_page": 2,
        "random_ties": True,
        "empty_first_listing": True,
        "empty_listings": 3,
        "ignore_id_filter": True,
        "unknown_id_error": True,
        "total_count": 9,
        "ignore_offset": True,
        "trickle_s": 0.5,
        "no_date_header": True,
    }
    for name, value in changed.items():
        setattr(faults, name, value)
    faults.clear()
    defaults = Faults()
    for name in changed:
        assert getattr(faults, name) == getattr(defaults, name), name
    assert [f.name for f in dataclasses.fields(Faults) if f.init and f.name not in changed] == [
        "latency_s",
        "rate_429",
        "retry_after",
        "rate_5xx",
        "rate_malformed",
        "drift_rate",
        "seed",
    ]
    pid = sim.pid()
    assert sim.get(pid, limit=3).json() == {
        "total_count": len(records(sim, pid)),
        "jobs": records(sim, pid)[:3],
    }
