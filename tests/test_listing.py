"""The listing protocol (``drs.listing``) and the by-id proof (``drs.absence``), unit tests.

The transport is faked (httpx.MockTransport) by ``FakeApi``, a few lines that
serve a list of jobs the ways the documentation allows a server to: capping
pages, shuffling ties, lying about its count, ignoring a parameter. The same
behaviours of the simulator are tested over HTTP in
tests/reliability/test_untrusted_server.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import orjson
import pytest

from drs_pipeline.drs.absence import Absence, confirm_absent
from drs_pipeline.drs.client import DrsClient, PagingPolicy, ProjectTarget
from drs_pipeline.drs.errors import DrsProtocolError
from drs_pipeline.drs.listing import Listing, list_project

PROJECT = "0" * 32
TARGET = ProjectTarget(PROJECT, "http://127.0.0.1")
# The fake server's clock, a day after its jobs were created (make_jobs).
NOW = "2026-12-01T08:00:00Z"
DATE = "Tue, 01 Dec 2026 08:00:00 GMT"
T = TypeVar("T")


@dataclass
class FakeApi:
    """A list endpoint over ``jobs`` (in listing order), with switches."""

    jobs: list[dict[str, str]]
    # Rows served per page at most, whatever limit asks.
    cap: int | None = None
    # Every answer reports this count instead of the true one.
    total_count: int | None = None
    ignore_offset: bool = False
    ignore_id_filter: bool = False
    # Every request sees the jobs in a fresh order (one big tie in create_time).
    shuffle: bool = False
    # Offsets answered with only half their rows (or ``answer_rows[offset]``), once each.
    short_once: set[int] = field(default_factory=set)
    answer_rows: dict[int, int] = field(default_factory=dict)
    # Offsets answered once with no job and a count of 0, as a glitch.
    glitch_once: set[int] = field(default_factory=set)
    # Every answer holds every job from the offset on.
    ignore_limit: bool = False
    # Jobs whose first by-id answer says they do not exist.
    absent_once: set[str] = field(default_factory=set)
    # Answers to by-id requests, instead of the true one.
    by_id_answer: httpx.Response | None = None
    # Each answer's Date header; None sends none (a server without a clock).
    date: str | None = DATE
    # Called with each request's parameters before it is answered: the list moves here.
    before_answer: Callable[[dict[str, str]], None] | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    asked: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.asked.append(params)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the others in flight arrive too
            if self.before_answer is not None:
                self.before_answer(params)
            response = self.answer(params)
        finally:
            self.in_flight -= 1
        if self.date is not None:
            response.headers["Date"] = self.date
        return response

    def answer(self, params: dict[str, str]) -> httpx.Response:
        jobs = list(self.jobs)
        if self.shuffle:
            self.rng.shuffle(jobs)
        job_id = params.get("async_job_id")
        if job_id is not None and self.by_id_answer is not None:
            return self.by_id_answer
        if job_id is not None and not self.ignore_id_filter:
            jobs = [job for job in jobs if job["async_job_id"] == job_id]
        for name in ("status", "domain_name", "user_name"):
            if name in params:
                jobs = [job for job in jobs if job[name] == params[name]]
        if job_id is not None and job_id in self.absent_once:
            self.absent_once.discard(job_id)
            jobs = []
        offset = 0 if self.ignore_offset else int(params["offset"])
        limit = len(jobs) if self.ignore_limit else int(params["limit"])
        if self.cap is not None:
            limit = min(limit, self.cap)
        if offset in self.short_once:
            self.short_once.discard(offset)
            limit = self.answer_rows.get(offset, limit // 2)
        if offset in self.glitch_once and job_id is None:
            self.glitch_once.discard(offset)
            return httpx.Response(200, content=orjson.dumps({"total_count": 0, "jobs": []}))
        page = jobs[offset : offset + limit]
        count = len(jobs) if self.total_count is None else self.total_count
        return httpx.Response(200, content=orjson.dumps({"total_count": count, "jobs": page}))

    def listing_requests(self) -> list[dict[str, str]]:
        return [params for params in self.asked if "async_job_id" not in params]


def make_jobs(count: int, statuses: int = 1, users: int = 1) -> list[dict[str, str]]:
    return [
        {
            "async_job_id": f"job-{i:05d}",
            "status": f"STATUS_{i % statuses}",
            "domain_name": "acme",
            "user_name": f"user-{i % users}",
            "create_time": "2026-11-30T08:00:00Z",
        }
        for i in range(count)
    ]


def run(api: FakeApi, use: Callable[[DrsClient], Awaitable[T]], page_size: int = 10) -> T:
    async def main() -> T:
        async with DrsClient(
            paging=PagingPolicy(page_size=page_size, max_jobs_per_project=10_000_000),
            transport=httpx.MockTransport(api),
            max_concurrency=4,
        ) as client:
            return await use(client)

    return asyncio.run(main())


def listed(api: FakeApi, page_size: int = 10) -> Listing:
    return run(api, lambda client: list_project(client, TARGET), page_size)


def test_a_count_that_fills_its_last_page_costs_no_extra_round_trip() -> None:
    """30 jobs in pages of 10: after page 0, offsets 10, 20 and 30 (the look for more)
    are in flight together. Each response is held until all three have arrived, so a
    client that waited for the last full page before looking for more would stall."""
    jobs = make_jobs(30)
    later = {10, 20, 30}
    arrived: set[int] = set()
    all_in_flight = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        if offset in later:
            arrived.add(offset)
            if arrived == later:
                all_in_flight.set()
            await asyncio.wait_for(all_in_flight.wait(), timeout=5)
        page = jobs[offset : offset + 10]
        body = orjson.dumps({"total_count": 30, "jobs": page})
        return httpx.Response(200, content=body, headers={"Date": DATE})

    async def main() -> list[int]:
        async with DrsClient(
            paging=PagingPolicy(page_size=10),
            transport=httpx.MockTransport(handler),
            max_concurrency=8,
        ) as client:
            listing = await list_project(client, TARGET)
        assert listing.complete
        return sorted(page.offset for page in listing.pages)

    assert asyncio.run(main()) == [0, 10, 20, 30]


@pytest.mark.parametrize("jobs", [2_350, 2_400])
def test_a_server_that_serves_fewer_rows_than_asked_is_paged_by_what_it_serves(
    jobs: int,
) -> None:
    api = FakeApi(make_jobs(jobs), cap=100)

    listing = listed(api, page_size=1000)

    assert listing.complete and len(listing.seen_ids()) == jobs
    requests = api.listing_requests()
    # What a page size of 100 needs: every page, and the look for more after a full last one.
    assert len(requests) == jobs // 100 + 1
    # Each page still asks for the page size: a first answer short once must not make
    # every page short.
    assert {r["limit"] for r in requests} == {"1000"}
    assert (
        sorted(int(r["offset"]) for r in requests) == list(range(0, jobs + 1, 100))[: len(requests)]
    )


def test_a_short_page_in_the_middle_is_filled_not_skipped() -> None:
    api = FakeApi(make_jobs(35), short_once={10})

    listing = listed(api)

    assert listing.complete and len(listing.seen_ids()) == 35 and listing.passes == 1
    assert sorted((int(r["offset"]), int(r["limit"])) for r in api.listing_requests()) == [
        (0, 10),
        (10, 10),
        (15, 5),
        (20, 10),
        (30, 10),
    ]


def test_offsets_are_planned_lazily_and_an_empty_page_ends_the_plan() -> None:
    """A count of nine million over 30 real jobs: a few windows of requests, not 900,000."""
    api = FakeApi(make_jobs(30), total_count=9_000_000)

    listing = listed(api)

    assert not listing.complete
    assert listing.incomplete_reason is not None
    assert "30 distinct jobs seen" in listing.incomplete_reason
    window = 2 * 4
    assert api.most_in_flight <= 4
    passes = [r for r in api.listing_requests() if "status" not in r]
    # Each pass: page 0, then at most a window beyond the first empty page.
    assert len(passes) <= listing.passes * (1 + 3 + window)


def test_a_count_beyond_max_jobs_per_project_fails_at_once() -> None:
    api = FakeApi(make_jobs(3), total_count=10**12)

    with pytest.raises(DrsProtocolError) as raised:
        listed(api)

    assert str(raised.value) == (
        f"project {PROJECT}, page offset 0: total_count 1000000000000 is more than "
        "max_jobs_per_project (10000000): refusing to list it"
    )
    assert len(api.asked) == 1


def test_a_server_that_ignores_offset_fails_at_once() -> None:
    api = FakeApi(make_jobs(100), ignore_offset=True)

    with pytest.raises(DrsProtocolError, match="the server ignores offset: this page repeats"):
        listed(api)

    assert len(api.asked) <= 1 + 2 * 4


def test_ties_in_a_random_order_are_listed_completely_by_passes_and_narrowing() -> None:
    """A hundred jobs created in one second, in a new order on every request: offset
    paging sees some twice and some never, and three passes still miss some. Listings
    narrowed by status, then by user (each fitting one page, one consistent answer),
    see them all."""
    api = FakeApi(make_jobs(100, statuses=4, users=5), shuffle=True)

    listing = listed(api)

    assert listing.complete and listing.seen_ids() == {f"job-{i:05d}" for i in range(100)}
    assert listing.passes == 4 and listing.narrowed > 0
    narrowed = [r for r in api.listing_requests() if "status" in r]
    assert {r["status"] for r in narrowed} == {f"STATUS_{i}" for i in range(4)}
    # Within the narrowing budget: four passes' requests and 32, beside the passes.
    assert len(api.asked) <= 4 * 11 + (4 * 11 + 32) + 4 * 5


def test_a_short_first_answer_does_not_make_every_page_short() -> None:
    api = FakeApi(make_jobs(500), short_once={0})
    api.answer_rows = {0: 2}

    listing = listed(api, page_size=100)

    assert listing.complete and len(listing.seen_ids()) == 500
    # Offsets step by 2 until pages of 100 come back, then by 100.
    assert len(api.asked) <= 1 + 8 + 6


def test_one_answer_holding_the_whole_list_ends_the_pass() -> None:
    """A server that ignores limit: its first answer holds every job."""
    api = FakeApi(make_jobs(30), ignore_limit=True)

    listing = listed(api)

    assert listing.complete and len(listing.seen_ids()) == 30 and len(api.asked) == 1


def test_an_answer_larger_than_its_limit_can_be_is_refused_while_read() -> None:
    big = [{**job, "user_name": "u" * 10_000} for job in make_jobs(100)]
    api = FakeApi(big, ignore_limit=True)

    with pytest.raises(DrsProtocolError) as raised:
        listed(api)

    assert str(raised.value) == (
        f"project {PROJECT}, page offset 0: the answer is larger than 262144 bytes for "
        "limit=10: refusing to read more (does the server ignore limit?)"
    )


def test_a_server_that_ignores_offset_and_shuffles_ties_is_paged_within_bounds() -> None:
    """Every page a random ten of the hundred jobs: no page repeats page 0's jobs, and
    full pages keep coming past the count. A pass stops when a page past the count
    brings nothing new, and never asks for more than twice the pages the count
    implies (and a window); what the union saw is still every job."""
    api = FakeApi(make_jobs(100), ignore_offset=True, shuffle=True)

    listing = listed(api)

    assert len(api.asked) <= listing.passes * (2 * 11 + 2 * 4)
    assert listing.complete == (len(listing.seen_ids()) == 100)


def test_an_empty_page_in_the_middle_of_a_pass_does_not_complete_it() -> None:
    """One answer of no jobs at offset 50 (a glitch): the pass covers 50 of the 100 jobs
    its first page counted, so the project is listed again."""
    api = FakeApi(make_jobs(100))
    api.glitch_once = {50}

    listing = listed(api)

    assert listing.complete and listing.passes == 2 and len(listing.seen_ids()) == 100


def test_a_job_that_arrived_during_the_pass_does_not_stand_in_for_one_it_skipped() -> None:
    """After page 0, a job of page 0 leaves (the rows after it shift up: job-00010 is
    never seen) and one arrives last, in the second the count was taken. The pass
    sees 30 distinct jobs for a count of 30, but the arrival is not one of the jobs
    counted: the project is listed again, and the second pass sees job-00010."""
    jobs = make_jobs(30)
    api = FakeApi(jobs)
    moved = False

    def move(params: dict[str, str]) -> None:
        nonlocal moved
        if not moved and params["offset"] != "0":
            moved = True
            del jobs[1]
            jobs.append({**make_jobs(1)[0], "async_job_id": "arrival", "create_time": NOW})

    api.before_answer = move

    listing = listed(api)

    assert listing.complete and listing.passes == 2
    assert {"job-00010", "arrival"} <= listing.seen_ids()
    # Each pass: page 0, then offsets 10 and 20 and the look for more at 30.
    assert len(api.listing_requests()) == 4 + 4


def test_a_job_seen_before_it_left_does_not_stand_in_for_one_every_pass_missed() -> None:
    """Ties in a new order on every request: the first pass misses job-00018 and sees
    job V, which then leaves; the second pass misses job-00018 again. Its 19 jobs and
    V make 20, its count, but V was not listed when the second pass began: the
    project is listed a third time, which sees job-00018."""
    j = [f"job-{i:05d}" for i in range(20)]
    answers = {
        # (pass, offset): (total_count, jobs)
        (1, 0): (21, j[:10]),
        (1, 10): (21, [*j[10:18], j[19], "V"]),
        (1, 20): (21, [j[19]]),
        (2, 0): (20, j[:10]),
        (2, 10): (20, [*j[10:18], j[19], j[0]]),
        (2, 20): (20, []),
        (3, 0): (20, j[:10]),
        (3, 10): (20, j[10:20]),
        (3, 20): (20, []),
    }
    passes = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal passes
        offset = int(request.url.params["offset"])
        passes += offset == 0
        count, ids = answers[passes, offset]
        page = [{**make_jobs(1)[0], "async_job_id": job_id} for job_id in ids]
        body = orjson.dumps({"total_count": count, "jobs": page})
        return httpx.Response(200, content=body, headers={"Date": DATE})

    async def main() -> Listing:
        async with DrsClient(
            paging=PagingPolicy(page_size=10), transport=httpx.MockTransport(handler)
        ) as client:
            return await list_project(client, TARGET)

    listing = asyncio.run(main())

    assert listing.complete and listing.passes == 3 and len(listing.pages) == 9
    assert listing.seen_ids() == {*j, "V"}


@pytest.mark.parametrize("date", [DATE, None], ids=["same-second", "no-date"])
def test_a_job_not_known_to_be_older_than_the_count_needs_a_second_pass(
    date: str | None,
) -> None:
    """A job created in the second of the Date the count came with (it may be newer
    than the count), or any job of a server that sends no Date, counts only when
    seen before the count and after it: a second pass, which sees them all again."""
    jobs = make_jobs(30)
    jobs[-1] = {**jobs[-1], "create_time": NOW}
    api = FakeApi(jobs, date=date)

    listing = listed(api)

    assert listing.complete and listing.passes == 2 and len(listing.seen_ids()) == 30
    assert len(api.listing_requests()) == 4 + 4


@pytest.mark.parametrize(
    "create_time",
    [
        "2026-11-30T08:00:00Z",
        "2026-11-30T16:00:00+08:00",
        "2026-11-30T08:00:00.5Z",
        "1796025600000",
    ],
    ids=["iso", "offset", "fraction", "epoch-ms"],
)
def test_jobs_created_before_the_count_in_any_shape_read_are_taken_in_one_pass(
    create_time: str,
) -> None:
    api = FakeApi([{**job, "create_time": create_time} for job in make_jobs(30)])

    listing = listed(api)

    assert listing.complete and listing.passes == 1 and len(api.listing_requests()) == 4


def test_a_listing_that_cannot_be_completed_is_bounded_and_says_why() -> None:
    api = FakeApi(make_jobs(30, statuses=2, users=3), total_count=45)

    listing = listed(api)

    assert not listing.complete
    # Three passes of five requests (four pages the count implies, one past the end);
    # narrowing (two statuses, three users under each) stops at its budget: four passes'
    # requests and 32.
    assert listing.passes == 3
    assert listing.incomplete_reason == (
        f"30 distinct jobs seen in 3 passes and {listing.narrowed} narrowed listings, for "
        "total_count 45; narrowing stopped: its budget of 52 requests is spent"
    )
    # The narrowed listings in flight when it ran out finish their pass (at most six
    # at once, of at most five requests each).
    assert len(api.asked) <= 3 * 5 + 52 + 6 * 5


def test_narrowing_stops_at_a_filter_the_server_ignores() -> None:
    """Answers to status=STATUS_0 that list other statuses: narrowing by it would list
    the whole project once per status, so it stops, and the listing is incomplete."""

    class IgnoresFilters(FakeApi):
        def answer(self, params: dict[str, str]) -> httpx.Response:
            return super().answer({k: v for k, v in params.items() if k != "status"})

    api = IgnoresFilters(make_jobs(30, statuses=3), total_count=45)

    listing = listed(api)

    # The three statuses' listings start together; the first answer stops them all.
    assert not listing.complete and listing.narrowed <= 3
    assert listing.incomplete_reason == (
        f"30 distinct jobs seen in 3 passes and {listing.narrowed} narrowed listings, for "
        "total_count 45; narrowing stopped: the server ignores the status filter"
    )
    # Three passes, and the one pass each status's listing had started.
    assert len(api.asked) <= 3 * 5 + 3 * 5


def test_an_error_while_narrowing_lands_what_was_seen_and_stops_the_other_listings() -> None:
    class RefusesAFilter(FakeApi):
        def answer(self, params: dict[str, str]) -> httpx.Response:
            if params.get("status") == "STATUS_1":
                return httpx.Response(
                    400, json={"error_code": "DRS.M00200", "error_msg": "Invalid parameter."}
                )
            return super().answer(params)

    api = RefusesAFilter(make_jobs(30, statuses=3), total_count=45)

    listing = listed(api)

    assert not listing.complete and len(listing.seen_ids()) == 30
    assert listing.incomplete_reason is not None
    assert listing.incomplete_reason.endswith(
        f"narrowing stopped: project {PROJECT}, listing status=STATUS_1, page offset 0: "
        "HTTP 400 DRS.M00200: Invalid parameter."
    )


def by_id(api: FakeApi, job_ids: list[str]) -> Absence:
    return run(api, lambda client: confirm_absent(client, TARGET, job_ids))


def test_by_id_one_answer_of_absence_is_not_enough() -> None:
    api = FakeApi(make_jobs(3), absent_once={"job-00001"})

    absence = by_id(api, ["job-00001"])

    assert absence.gone == frozenset() and absence.inconclusive is None
    assert [page.jobs[0]["async_job_id"] for page in absence.found] == ["job-00001"]
    assert len(api.asked) == 2


def test_by_id_absences_prove_nothing_when_the_controls_are_answered_absent_too() -> None:
    api = FakeApi(make_jobs(3), absent_once={"job-00000", "job-00002"})

    absence = run(
        api,
        lambda client: confirm_absent(
            client, TARGET, ["job-99999"], controls=["job-00000", "job-00002"]
        ),
    )

    assert absence == Absence(
        frozenset(),
        (),
        "jobs job-00000, job-00002, listed in this sync, were answered absent by id: "
        "no absence can be proven",
    )


def test_by_id_a_job_absent_found_or_denied_by_the_documented_error() -> None:
    api = FakeApi(make_jobs(3))

    absence = by_id(api, ["job-00001", "job-99999"])

    assert absence.gone == {"job-99999"} and absence.inconclusive is None
    assert [page.jobs[0]["async_job_id"] for page in absence.found] == ["job-00001"]
    api.by_id_answer = httpx.Response(
        400, json={"error_code": "DRS.10000010", "error_msg": "The job does not exist."}
    )
    assert by_id(api, ["job-99999"]) == Absence(frozenset({"job-99999"}), ())


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            httpx.Response(200, json={"total_count": 3, "jobs": make_jobs(1)}),
            "the async_job_id filter was ignored: asked for job job-99999, the answer listed "
            "1 job(s) of total_count 3; no absence can be proven",
        ),
        (
            httpx.Response(200, json={"total_count": 2, "jobs": []}),
            "the async_job_id filter was ignored: asked for job job-99999, the answer listed "
            "0 job(s) of total_count 2; no absence can be proven",
        ),
        (
            httpx.Response(400, json={"error_code": "DRS.10000001", "error_msg": "Failed."}),
            f"could not confirm missing jobs: project {PROJECT}, job job-99999, page offset 0: "
            "HTTP 400 DRS.10000001: Failed.",
        ),
        (
            httpx.Response(
                404, json={"error_code": "DRS.10000010", "error_msg": "The job does not exist."}
            ),
            f"could not confirm missing jobs: project {PROJECT}, job job-99999, page offset 0: "
            "HTTP 404 DRS.10000010: The job does not exist.",
        ),
    ],
    ids=["other-jobs", "count-without-jobs", "other-code", "same-code-other-status"],
)
def test_by_id_an_answer_not_clearly_about_that_job_proves_nothing(
    answer: httpx.Response, reason: str
) -> None:
    api = FakeApi(make_jobs(3), by_id_answer=answer)

    absence = by_id(api, ["job-99999"])

    assert absence == Absence(frozenset(), (), reason)
