"""The bound a sync is compared with: download and JSON-decode the same pages, nothing else.

It asks for the pages the pipeline's client asks for, in the same order of
dependence (page 0 gives ``total_count``, the pages it implies concurrently,
and the look for more after a count that fills its last page, then the next
offset while the last page is full) and with the same HTTP stack
and concurrency (one httpx pool of ``max_concurrency`` kept-alive connections),
but it neither checks, nor normalizes, nor stores anything: whatever time a
sync takes beyond this one is spent by our code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import orjson

from drs_pipeline.drs.statuses import LIST_PATH_TEMPLATE


@dataclass(frozen=True)
class Fetched:
    rows: int
    requests: int
    seconds: float


async def fetch_all(
    endpoint: str,
    project_ids: Sequence[str],
    token: str,
    *,
    page_size: int,
    max_concurrency: int,
) -> Fetched:
    """Every page of every project, ``max_concurrency`` requests in flight."""
    slots = asyncio.Semaphore(max_concurrency)
    requests = 0
    limits = httpx.Limits(
        max_connections=max_concurrency, max_keepalive_connections=max_concurrency
    )
    headers = {"X-Auth-Token": token, "Content-Type": "application/json", "X-Language": "en-us"}
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60.0) as http:

        async def page(project_id: str, offset: int) -> tuple[int, int]:
            nonlocal requests
            url = endpoint + LIST_PATH_TEMPLATE.format(project_id=project_id)
            params: dict[str, str | int] = {
                "offset": offset,
                "limit": page_size,
                "sort_key": "create_time",
                "sort_dir": "asc",
            }
            async with slots:
                requests += 1
                response = await http.get(url, params=params)
            response.raise_for_status()
            document = orjson.loads(response.content)
            return int(document["total_count"]), len(document["jobs"])

        async def project(project_id: str) -> int:
            total, first = await page(project_id, 0)
            sizes = [first]
            if first == page_size:
                # Every page the count implies, and the look for more after a full last one.
                planned = range(page_size, (total // page_size + 1) * page_size, page_size)
                done = await asyncio.gather(*(page(project_id, offset) for offset in planned))
                sizes += [size for _, size in done]
            while sizes[-1] == page_size:
                sizes.append((await page(project_id, len(sizes) * page_size))[1])
            return sum(sizes)

        started = time.perf_counter()
        if max_concurrency == 1:
            # The sequential pager: one project after the other, one page at a time.
            rows = 0
            for project_id in project_ids:
                rows += await project(project_id)
        else:
            rows = sum(await asyncio.gather(*(project(p) for p in project_ids)))
        seconds = time.perf_counter() - started
    return Fetched(rows=rows, requests=requests, seconds=seconds)
