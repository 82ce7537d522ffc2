"""The DRS batch-async-jobs client: every page of a project, with retries.

Offset paging over a list that moves is not a snapshot (drs-api.md, last
section), so a listing here is a small protocol, not a loop:

1. Page 0 gives ``total_count``; the other pages it implies are fetched
   concurrently (``max_concurrency`` requests in flight across all projects).
   Pages are asked for oldest first (``sort_dir=asc``): a job created during the
   listing then lands on the last page instead of shifting every later offset.
2. ``total_count`` is not trusted alone: while the last page is full, the next
   offset is fetched too, and an empty page ends the listing.
3. A pass *settles* when every page of it reported the same ``total_count`` and
   the distinct ids it collected equal that count. Otherwise the project is
   listed again, up to ``max_listing_attempts`` passes; observations of all
   passes are kept (the newest per job wins later, in normalization).
4. Even a settled pass can miss a live job (one vanished, one arrived, the
   count still matches), so a job is only declared gone after the API,
   asked for it by id, says it does not exist (``confirm_absent``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import operator
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import orjson

from drs_pipeline.drs.auth import CredentialAuth
from drs_pipeline.drs.errors import (
    DrsApiError,
    DrsCertificateError,
    DrsError,
    DrsResponseError,
    DrsTransportError,
    IamAuthError,
    IamError,
    Where,
    certificate_refusal,
    parse_error_body,
)
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.drs.slots import PrioritySlots
from drs_pipeline.drs.statuses import LIST_PATH_TEMPLATE

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PagingPolicy:
    page_size: int = 1000
    # Passes over one project before a listing that keeps moving is declared incomplete.
    max_listing_attempts: int = 3
    # A server that never returns a short page must not keep us paging forever.
    max_pages_per_pass: int = 100_000
    # Oldest first by default: a job created mid-listing then lands on the last page
    # instead of shifting every later offset (under desc each arrival repeats a row on
    # the next page). Both are handled; "desc" exists so tests can prove it.
    sort_dir: str = "asc"


@dataclass(frozen=True)
class Page:
    """One response of the list endpoint, as fetched."""

    offset: int
    total_count: int
    jobs: list[Any]
    fetched_at: datetime
    request_id: str | None


@dataclass
class Listing:
    """Everything seen of one project in one sync."""

    project_id: str
    pages: list[Page] = field(default_factory=list)
    passes: int = 0
    settled: bool = False
    total_count: int = 0
    # Why the listing did not settle, for the sync report.
    unsettled_reason: str | None = None

    def seen_ids(self) -> set[str]:
        """Ids of every record seen, malformed ones included (they still exist)."""
        return {
            job_id
            for page in self.pages
            for record in page.jobs
            if isinstance(record, dict) and isinstance(job_id := record.get("async_job_id"), str)
        }


@dataclass(frozen=True)
class Absence:
    """What asking for each missing job by id found out."""

    gone: frozenset[str]
    # Responses that showed a job after all; they count as observations.
    found: tuple[Page, ...]


@dataclass(frozen=True)
class ProjectTarget:
    project_id: str
    endpoint: str
    # How this project's requests authenticate (projects may be in different
    # accounts); None uses the client's ``auth``.
    auth: httpx.Auth | None = field(default=None, repr=False, compare=False)


class DrsClient:
    """Reads batch async jobs. One instance per sync; use as an async context manager.

    ``auth`` authenticates the requests of targets that carry none of their own
    (``ProjectTarget.auth``).
    """

    def __init__(
        self,
        *,
        auth: httpx.Auth | None = None,
        paging: PagingPolicy | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        language: str = "en-us",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.paging = paging or PagingPolicy()
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        # One budget of in-flight requests for the whole sync, across projects, given to
        # the project that started first (see slots.py): projects then finish in turn.
        self._slots = PrioritySlots(max_concurrency)
        self._ranks: dict[str, int] = {}
        self._lookahead = max_concurrency
        self._http = httpx.AsyncClient(
            auth=auth,
            transport=transport,
            headers={"Content-Type": "application/json", "X-Language": language},
            timeout=timeout or httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            # TLS verification is always on; plain http is only accepted by the
            # configuration for loopback hosts.
            verify=True,
            follow_redirects=False,
        )
        self.requests_sent = 0

    async def __aenter__(self) -> DrsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    # -- listing -----------------------------------------------------------

    async def list_project(
        self, target: ProjectTarget, on_page: Callable[[Page], None] | None = None
    ) -> Listing:
        listing = Listing(project_id=target.project_id)
        for _ in range(self.paging.max_listing_attempts):
            listing.passes += 1
            pages = await self._list_pass(target, on_page)
            listing.pages.extend(pages)
            listing.total_count = pages[-1].total_count
            problem = _unsettled_reason(pages)
            if problem is None:
                listing.settled = True
                listing.unsettled_reason = None
                break
            listing.unsettled_reason = problem
            log.info(
                "project %s: listing moved during pass %d (%s); listing again",
                target.project_id,
                listing.passes,
                problem,
            )
        return listing

    async def _list_pass(
        self, target: ProjectTarget, on_page: Callable[[Page], None] | None
    ) -> list[Page]:
        size = self.paging.page_size

        async def fetch(offset: int) -> Page:
            page = await self.fetch_page(target, offset=offset, limit=size)
            log.debug(
                "project %s: page offset %d: %d jobs of total_count %d",
                target.project_id,
                offset,
                len(page.jobs),
                page.total_count,
            )
            if on_page is not None:
                on_page(page)
            return page

        first = await fetch(0)
        pages = [first]
        if len(first.jobs) == size:
            planned = planned_offsets(first.total_count, size)
            pages += await _all_or_cancel(fetch(offset) for offset in planned)
        # The count may have grown meanwhile, or may be wrong: keep going while
        # the last page is full; an empty or short page ends the pass.
        while len(pages[-1].jobs) == size:
            if len(pages) >= self.paging.max_pages_per_pass:
                raise DrsResponseError(
                    Where(target.project_id, pages[-1].offset),
                    f"still full pages after {len(pages)} pages; giving up on this listing",
                )
            pages.append(await fetch(pages[-1].offset + size))
        return pages

    async def confirm_absent(self, target: ProjectTarget, job_ids: Iterable[str]) -> Absence:
        """Ask for each job by id; those the API does not return are gone."""
        ids = sorted(job_ids)
        responses = await _all_or_cancel(
            self.fetch_page(target, offset=0, limit=1, async_job_id=job_id) for job_id in ids
        )
        gone: set[str] = set()
        found: list[Page] = []
        for job_id, page in zip(ids, responses, strict=True):
            listed = {r.get("async_job_id") for r in page.jobs if isinstance(r, dict)}
            if job_id in listed:
                found.append(page)
            else:
                gone.add(job_id)
        return Absence(gone=frozenset(gone), found=tuple(found))

    # -- one request -------------------------------------------------------

    async def fetch_page(
        self,
        target: ProjectTarget,
        *,
        offset: int,
        limit: int,
        async_job_id: str | None = None,
    ) -> Page:
        """One page, retried per the policy; raises a DrsError naming where."""
        where = Where(target.project_id, offset, async_job_id)
        url = target.endpoint + LIST_PATH_TEMPLATE.format(project_id=target.project_id)
        params: dict[str, str | int] = {
            "offset": offset,
            "limit": limit,
            "sort_key": "create_time",
            "sort_dir": self.paging.sort_dir,
        }
        if async_job_id is not None:
            params["async_job_id"] = async_job_id
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._send(url, params, where, offset, target.auth)
            except DrsError as error:
                error.attempts = attempt
                delay = self.retry.delay_before_retry(error, attempt, self._rng)
                if not self.retry.should_retry(error, attempt, waited, delay):
                    raise
                log.warning("%s; retrying in %.2f s", error, delay)
            await self._sleep(delay)
            waited += delay

    async def _send(
        self,
        url: str,
        params: dict[str, str | int],
        where: Where,
        offset: int,
        auth: httpx.Auth | None,
    ) -> Page:
        # Hold a slot only while the request is in flight, not while backing off.
        rank = self._ranks.setdefault(where.project_id, len(self._ranks))
        if where.offset == 0 and where.async_job_id is None:
            # A listing's first page comes as early as the pages of the project that many
            # ranks ahead: its total_count then already waits when that project's turn
            # comes, and the last projects' chains (first page, the others, the check
            # for more) do not end up alone at the tail with slots to spare.
            rank -= self._lookahead
        async with self._slots.hold(rank):
            self.requests_sent += 1
            # Raised after the except blocks, not inside them: httpx's exception holds the
            # request, credentials included, and would stay reachable as __context__.
            failure: DrsError | None = None
            try:
                response = await self._http.get(
                    url, params=params, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT
                )
            except IamError as exc:
                failure = IamAuthError(where, exc)
            except httpx.TimeoutException as exc:
                failure = DrsTransportError(where, f"timed out ({type(exc).__name__})")
            except httpx.TransportError as exc:
                refused = certificate_refusal(exc)
                if refused is not None:
                    failure = DrsCertificateError(
                        where, f"TLS certificate of {url} refused ({refused})"
                    )
                else:
                    failure = DrsTransportError(
                        where, f"transport error ({type(exc).__name__}: {exc})"
                    )
            if failure is not None:
                raise failure
            fetched_at = self._clock()
        # Let the request that waited for this slot go out before this page is read
        # and decoded (a few ms of CPU): when the API's latency is the limit, the slots
        # then wait on the API rather than on us.
        await asyncio.sleep(0)
        request_id = response.headers.get("X-Request-Id")
        if response.status_code != 200:
            error_code, error_msg = parse_error_body(response.content)
            # A gateway may echo a credential (an AK) in its message.
            used = auth if auth is not None else self._http.auth
            if error_msg is not None and isinstance(used, CredentialAuth):
                error_msg = used.redact(error_msg)
            raise DrsApiError(
                where,
                status_code=response.status_code,
                error_code=error_code,
                error_msg=error_msg,
                request_id=request_id,
                retry_after=response.headers.get("Retry-After"),
            )
        return _parse_page(response.content, where, offset, fetched_at, request_id)


def planned_offsets(total_count: int, page_size: int) -> range:
    """The offsets after page 0 that a listing of ``total_count`` jobs asks for at once.

    Every page the count implies, and when the count fills its last page exactly,
    the offset after it as well: a full last page is always followed by a look for
    more (the count may have grown), and asked for together with the others that
    look costs no round trip of its own.
    """
    return range(page_size, (total_count // page_size + 1) * page_size, page_size)


def _parse_page(
    body: bytes, where: Where, offset: int, fetched_at: datetime, request_id: str | None
) -> Page:
    def malformed(reason: str) -> DrsResponseError:
        return DrsResponseError(where, f"malformed response body: {reason}", request_id=request_id)

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise malformed(f"not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise malformed(f"expected a JSON object, got {type(document).__name__}")
    total_count = document.get("total_count")
    if isinstance(total_count, bool) or not isinstance(total_count, int) or total_count < 0:
        raise malformed(f"total_count missing or not a non-negative integer: {total_count!r}")
    jobs = document.get("jobs")
    if not isinstance(jobs, list):
        raise malformed(f"jobs is not a list: {type(jobs).__name__}")
    return Page(offset, total_count, jobs, fetched_at, request_id)


_JOB_ID = operator.itemgetter("async_job_id")


def _string_ids(records: list[Any]) -> list[str] | None:
    """Each record's ``async_job_id`` if every record is an object with a string id."""
    try:
        # KeyError for a record without an id, TypeError for one that is no object.
        ids = list(map(_JOB_ID, records))
    except (KeyError, TypeError):
        return None
    return ids if all(map(isinstance, ids, itertools.repeat(str))) else None


def _unsettled_reason(pages: list[Page]) -> str | None:
    counts = {page.total_count for page in pages}
    if len(counts) > 1:
        return f"total_count changed between pages ({min(counts)}..{max(counts)})"
    # Records without a usable id cannot be told apart: each counts as one job.
    ids: set[str] = set()
    anonymous = 0
    # An id twice within one page is two rows of the API's count (a page is one
    # snapshot: drift cannot repeat a row inside it). Counted once, a listing with
    # such a record could never settle, and nothing of its project would ever be
    # marked gone.
    repeated = 0
    for page in pages:
        page_ids = _string_ids(page.jobs)
        if page_ids is not None:
            # Every record an object with a string id, as nearly always: the same
            # counts from set operations in C rather than a Python loop per record.
            in_page = set(page_ids)
            repeated += len(page_ids) - len(in_page)
            ids |= in_page
            continue
        in_page = set()
        for record in page.jobs:
            if isinstance(record, dict) and isinstance(job_id := record.get("async_job_id"), str):
                repeated += job_id in in_page
                in_page.add(job_id)
                ids.add(job_id)
            else:
                anonymous += 1
    distinct = len(ids) + anonymous + repeated
    expected = pages[0].total_count
    if distinct != expected:
        return f"{distinct} distinct jobs collected for total_count {expected}"
    return None


async def _all_or_cancel(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather``, except that the first failure cancels the others.

    A project whose page failed for good is failed: its other pages must not
    keep retrying (and holding request slots) until the sync ends.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
