"""Which pages a listing asks for at once (``planned_offsets``), and that it does.

A unit test: the transport is faked (httpx.MockTransport) so that the test can
hold every response until the requests it expects are all in flight.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from drs_pipeline.drs.client import DrsClient, PagingPolicy, ProjectTarget, planned_offsets

PROJECT = "0" * 32


@pytest.mark.parametrize(
    ("total_count", "expected"),
    [
        (0, []),
        (1, []),
        (9, []),
        # A count that fills its last page: the look for more goes with the others.
        (10, [10]),
        (11, [10]),
        (19, [10]),
        (20, [10, 20]),
        (50, [10, 20, 30, 40, 50]),
    ],
)
def test_planned_offsets(total_count: int, expected: list[int]) -> None:
    assert list(planned_offsets(total_count, 10)) == expected


def test_a_count_that_fills_its_last_page_costs_no_extra_round_trip() -> None:
    """30 jobs in pages of 10: after page 0, offsets 10, 20 and 30 (the look for more)
    are in flight together. Each response is held until all three have arrived, so a
    client that waited for the last full page before looking for more would stall."""
    jobs = [{"async_job_id": f"job-{i:02d}"} for i in range(30)]
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
        return httpx.Response(200, content=orjson.dumps({"total_count": 30, "jobs": page}))

    async def main() -> list[int]:
        async with DrsClient(
            paging=PagingPolicy(page_size=10),
            transport=httpx.MockTransport(handler),
            max_concurrency=8,
        ) as client:
            listing = await client.list_project(ProjectTarget(PROJECT, "http://127.0.0.1"))
        assert listing.settled
        return [page.offset for page in listing.pages]

    assert asyncio.run(main()) == [0, 10, 20, 30]
