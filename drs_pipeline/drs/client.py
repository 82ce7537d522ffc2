"""The DRS batch-async-jobs client: one request, retried, bounded in time.

``DrsClient`` sends the list endpoint's requests: each one authenticated per
project, retried per the ``RetryPolicy``, held to a per-request deadline and to
the sync's own deadline, and counted per project. How a whole project is listed
(paging, passes, narrowing) is ``drs.listing``; asking for jobs by id is
``drs.absence``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import reprlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from drs_pipeline.drs.auth import CredentialAuth
from drs_pipeline.drs.clock import parse_http_date
from drs_pipeline.drs.errors import (
    DrsApiError,
    DrsApiNotServedError,
    DrsCertificateError,
    DrsDeadlineError,
    DrsError,
    DrsProtocolError,
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

# What one page may weigh: a job is five short strings (about 180 bytes as JSON), so
# this leaves room for ten times that, and a small page still gets a useful body.
MAX_BYTES_PER_ROW = 2048
MIN_BODY_BYTES = 256 * 1024

# The documented list filters, in the order a listing is narrowed by them.
LIST_FILTERS = ("status", "domain_name", "user_name")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PagingPolicy:
    """How a project is listed (``drs.listing``)."""

    # Rows asked for per page; a server may serve fewer (its own cap), see listing.py.
    page_size: int = 1000
    # Passes over one listing before it is narrowed, then declared incomplete.
    max_listing_attempts: int = 3
    # A project the API says is larger is refused: no plan, and no memory, for it.
    max_jobs_per_project: int = 10_000_000
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
    # Rows asked for; a server may serve fewer.
    limit: int = 0
    # The list filters it was asked with (status, domain_name, user_name), if any.
    filters: tuple[tuple[str, str], ...] = ()
    # The server's clock when it answered (its Date header, to the second); None when
    # it sent none or one that could not be read (drs.clock).
    server_date: datetime | None = None
    # Our clock when the request that got this answer was sent: the server looked
    # between this and fetched_at.
    requested_at: datetime | None = None


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
    (``ProjectTarget.auth``). ``request_timeout_s`` bounds each request from its
    send to its last byte (httpx's timeouts bound each read, so a server that
    trickles a byte at a time would otherwise hold it for ever); ``sync_timeout_s``
    bounds every request of the client's life, counted from ``__aenter__``.
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
        request_timeout_s: float = 60.0,
        sync_timeout_s: float | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.paging = paging or PagingPolicy()
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random()
        # One budget of in-flight requests for the whole sync, across projects, given to
        # the project that started first (see slots.py): projects then finish in turn.
        self._slots = PrioritySlots(max_concurrency)
        self._ranks: dict[str, int] = {}
        self._lookahead = max_concurrency
        # Requests a listing keeps planned at once: enough to fill every slot, few
        # enough that a huge project costs no memory up front.
        self.window = 2 * max_concurrency
        self.request_timeout_s = request_timeout_s
        self.sync_timeout_s = sync_timeout_s
        self._deadline: float | None = None
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
        self.requests_by_project: Counter[str] = Counter()

    async def __aenter__(self) -> DrsClient:
        if self.sync_timeout_s is not None:
            self._deadline = asyncio.get_running_loop().time() + self.sync_timeout_s
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    def _time_left(self) -> float | None:
        if self._deadline is None:
            return None
        return self._deadline - asyncio.get_running_loop().time()

    # -- one request -------------------------------------------------------

    async def fetch_page(
        self,
        target: ProjectTarget,
        *,
        offset: int,
        limit: int,
        async_job_id: str | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Page:
        """One page, retried per the policy; raises a DrsError naming where."""
        filter_items = tuple(sorted((filters or {}).items()))
        described = "&".join(f"{name}={value}" for name, value in filter_items) or None
        where = Where(target.project_id, offset, async_job_id, described)
        url = target.endpoint + LIST_PATH_TEMPLATE.format(project_id=target.project_id)
        params: dict[str, str | int] = {
            "offset": offset,
            "limit": limit,
            "sort_key": "create_time",
            "sort_dir": self.paging.sort_dir,
        }
        if async_job_id is not None:
            params["async_job_id"] = async_job_id
        params.update(filter_items)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._send(url, params, where, target, filter_items)
            except DrsError as error:
                error.attempts = attempt
                delay = self.retry.delay_before_retry(error, attempt, self._rng)
                left = self._time_left()
                if not self.retry.should_retry(error, attempt, waited, delay) or (
                    left is not None and delay >= left
                ):
                    raise
                log.warning("%s; retrying in %.2f s", error, delay)
            await self._sleep(delay)
            waited += delay

    async def _send(
        self,
        url: str,
        params: dict[str, str | int],
        where: Where,
        target: ProjectTarget,
        filters: tuple[tuple[str, str], ...],
    ) -> Page:
        # Hold a slot only while the request is in flight, not while backing off.
        rank = self._ranks.setdefault(where.project_id, len(self._ranks))
        if where.offset == 0 and where.async_job_id is None:
            # A listing's first page comes as early as the pages of the project that many
            # ranks ahead: its total_count then already waits when that project's turn
            # comes, and the last projects' chains (first page, the others, the check
            # for more) do not end up alone at the tail with slots to spare.
            rank -= self._lookahead
        auth = target.auth
        # Raised after the except blocks, not inside them: httpx's exception holds the
        # request, credentials included, and would stay reachable as __context__.
        failure: DrsError | None = None
        try:
            # The sync's deadline covers the wait for a slot too.
            async with asyncio.timeout(self._time_left()), self._slots.hold(rank):
                self.requests_sent += 1
                self.requests_by_project[where.project_id] += 1
                try:
                    requested_at = self._clock()
                    async with asyncio.timeout(self.request_timeout_s):
                        response, body = await self._get(url, params, auth)
                except _TooLarge as exc:
                    failure = DrsProtocolError(where, str(exc))
                except TimeoutError:
                    failure = DrsTransportError(
                        where,
                        f"no complete response from {target.endpoint} within "
                        f"request_timeout_s ({self.request_timeout_s:g} s)",
                    )
                except IamError as exc:
                    failure = IamAuthError(where, exc)
                except httpx.TimeoutException as exc:
                    failure = DrsTransportError(
                        where, f"timed out ({type(exc).__name__}) waiting for {target.endpoint}"
                    )
                except httpx.TransportError as exc:
                    refused = certificate_refusal(exc)
                    if refused is not None:
                        failure = DrsCertificateError(
                            where, f"TLS certificate of {url} refused ({refused})"
                        )
                    else:
                        # The URL a user has to check, never a credential: the
                        # endpoint is scheme, host and port.
                        failure = DrsTransportError(
                            where,
                            f"could not connect to {target.endpoint} ({type(exc).__name__}: {exc})"
                            if isinstance(exc, httpx.ConnectError)
                            else f"transport error ({type(exc).__name__}: {exc}) "
                            f"from {target.endpoint}",
                        )
                if failure is None:
                    fetched_at = self._clock()
        except TimeoutError:
            failure = DrsDeadlineError(
                where,
                f"the sync's deadline passed (sync_timeout_s = {self.sync_timeout_s:g} s) "
                "before this request was answered",
            )
        if failure is not None:
            raise failure
        # Let the request that waited for this slot go out before this page is read
        # and decoded: when the API's latency is the limit, the slots then wait on the
        # API rather than on us (docs/decisions/0005-http-stack.md).
        await asyncio.sleep(0)
        request_id = response.headers.get("X-Request-Id")
        if response.status_code != 200:
            error_code, error_msg = parse_error_body(body)
            # A gateway may echo a credential (an AK) in its message.
            used = auth if auth is not None else self._http.auth
            if error_msg is not None and isinstance(used, CredentialAuth):
                error_msg = used.redact(error_msg)
            answer: dict[str, Any] = {
                "status_code": response.status_code,
                "error_code": error_code,
                "error_msg": error_msg,
                "request_id": request_id,
                "retry_after": response.headers.get("Retry-After"),
            }
            if response.status_code == 404 and error_code == "APIGW.0101":
                raise DrsApiNotServedError(where, endpoint=target.endpoint, **answer)
            raise DrsApiError(where, **answer)
        server_date = parse_http_date(response.headers.get("Date"))
        page = _parse_page(body, where, params, filters, fetched_at, request_id, server_date)
        return replace(page, requested_at=requested_at)

    async def _get(
        self, url: str, params: dict[str, str | int], auth: httpx.Auth | None
    ) -> tuple[httpx.Response, bytes]:
        """The response and its body, refusing a body far larger than ``limit`` rows
        can be (a server that ignores limit, or sends without end)."""
        most = max(MIN_BODY_BYTES, int(params["limit"]) * MAX_BYTES_PER_ROW)
        async with self._http.stream(
            "GET", url, params=params, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT
        ) as response:
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > most:
                    raise _TooLarge(
                        f"the answer is larger than {most} bytes for limit={params['limit']}: "
                        "refusing to read more (does the server ignore limit?)"
                    )
                chunks.append(chunk)
        return response, b"".join(chunks)


class _TooLarge(Exception):
    pass


def _parse_page(
    body: bytes,
    where: Where,
    params: Mapping[str, str | int],
    filters: tuple[tuple[str, str], ...],
    fetched_at: datetime,
    request_id: str | None,
    server_date: datetime | None,
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
        raise malformed(
            f"total_count missing or not a non-negative integer: {reprlib.repr(total_count)}"
        )
    jobs = document.get("jobs")
    if not isinstance(jobs, list):
        raise malformed(f"jobs is not a list: {type(jobs).__name__}")
    offset, limit = int(params["offset"]), int(params["limit"])
    return Page(offset, total_count, jobs, fetched_at, request_id, limit, filters, server_date)
