"""SimulatorApp: a raw ASGI 3 app serving ``GET /v5/{project_id}/batch-async-jobs``.

No web framework: one route, and full control over what goes on the wire (a
truncated body, a dropped connection) matters more here than convenience.

Request handling order (as the real gateway layers do it): latency, path and
method, auth, project, parameters, then scripted faults, random faults, serve.

Serving applies the switches for what the documentation leaves open (see
faults.py): the page the server answers is the query as sent with ``max_page``,
``ignore_offset`` and ``ignore_id_filter`` applied; then an empty first listing,
an unknown-id 400, the tie shuffle, a forced ``total_count`` and the trickled
body, in that order. ``sort_key=`` and ``sort_dir=`` with empty values (as the
documentation's own example sends them) mean the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl

import orjson

from drs_pipeline.drs import statuses
from drs_pipeline.simulator import errors
from drs_pipeline.simulator.errors import ApiError
from drs_pipeline.simulator.faults import Faults, ScriptedFault
from drs_pipeline.simulator.gateway import AkSkGateway
from drs_pipeline.simulator.iam import TOKENS_PATH, SimIam
from drs_pipeline.simulator.world import World

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
# What an empty first listing answers (Faults.empty_first_listing, empty_listings).
EMPTY_LISTING = b'{"total_count":0,"jobs":[]}'

_PATH_PREFIX, _, _PATH_SUFFIX = statuses.LIST_PATH_TEMPLATE.partition("{project_id}")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the stats log keeps it. Never the token."""

    project_id: str | None
    offset: int | None
    limit: int | None
    # HTTP status sent; 0 when the connection was dropped without a response.
    status: int
    # None for a normal response, else what was injected: "scripted", "drop",
    # "stall", "429", "5xx", "malformed", "drift" (drift still serves the page),
    # "empty" (an empty first listing), "unknown_id" (400 DRS.10000010). The
    # standing switches (max_page, random_ties, ...) are not counted per request.
    fault: str | None = None


@dataclass
class SimStats:
    """Counters for tests and benchmarks. Written by the server's event loop only."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_fault: Counter[str] = field(default_factory=Counter)
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=100_000))

    def record(self, entry: RequestRecord) -> None:
        self.requests += 1
        self.by_status[entry.status] += 1
        if entry.fault is not None:
            self.by_fault[entry.fault] += 1
        self.log.append(entry)

    def reset(self) -> None:
        self.requests = 0
        self.by_status.clear()
        self.by_fault.clear()
        self.log.clear()


@dataclass(frozen=True, slots=True)
class ListQuery:
    project_id: str
    offset: int
    limit: int
    sort_dir: Literal["asc", "desc"]
    async_job_id: str | None
    status: str | None
    domain_name: str | None
    user_name: str | None


class SimulatorApp:
    """The ASGI callable. ``tokens`` are the accepted X-Auth-Token values (there is
    no default: whoever starts a simulator chooses them); a token in
    ``expired_tokens`` gets 401 APIGW.0307 (the
    "renew your token" answer). Both sets may be changed while serving.

    Its time is the world's clock (``world.now()``): what it lists and the ``Date``
    header every response carries (RFC 9110 6.6.1) come from the same "now".

    ``page_cache``: how many rendered page bodies to keep (LRU), keyed by the
    query, the time and the world's version. 0 (the default) renders every
    response. Only worth it when the clock stands still between requests (a
    benchmark's ManualClock): with a moving clock no two requests share a key.
    Valid as long as jobs change only through World's methods."""

    def __init__(
        self,
        world: World,
        faults: Faults | None = None,
        *,
        tokens: Iterable[str],
        page_cache: int = 0,
    ) -> None:
        self.world = world
        self.faults = faults if faults is not None else Faults()
        self.tokens: set[str] = set(tokens)
        self.expired_tokens: set[str] = set()
        # Off unless set: AK/SK verification of signed requests, and IAM
        # (POST /v3/auth/tokens, whose tokens the list then accepts).
        self.gateway: AkSkGateway | None = None
        self.iam: SimIam | None = None
        self.stats = SimStats()
        self._page_cache_size = page_cache
        self._page_cache: OrderedDict[tuple[ListQuery, float, int], bytes] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        # Anything else (websocket) is not served; the server rejects it.

    # -- request pipeline -----------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = uuid.uuid4().hex
        if self.faults.latency_s > 0:
            # Sleep, not block: concurrent requests must overlap as they would upstream.
            await asyncio.sleep(self.faults.latency_s)

        if self.iam is not None and scope.get("path") == TOKENS_PATH:
            # IAM keeps its own counters: the stats stay about the list endpoint.
            answer = self.iam.handle(str(scope.get("method")), await _read_body(receive))
            await self._respond(send, request_id, answer.status, answer.body, answer.headers)
            return
        project_id = _match_path(scope.get("path", ""))
        if project_id is None or scope.get("method") != "GET":
            await self._error(send, request_id, errors.NO_SUCH_API, None)
            return
        if self.gateway is not None and self.gateway.is_signed(scope):
            auth_error = self.gateway.verify(scope, await _read_body(receive), project_id)
        else:
            auth_error = self._check_token(scope, project_id)
        if auth_error is not None:
            await self._error(send, request_id, auth_error, project_id)
            return
        if not self.world.has_project(project_id):
            await self._error(send, request_id, errors.BAD_PROJECT, project_id)
            return
        max_limit = MAX_LIMIT if self.faults.max_page is None else None
        query = _parse_query(project_id, scope.get("query_string", b""), max_limit)
        if isinstance(query, ApiError):
            await self._error(send, request_id, query, project_id)
            return

        scripted = self.faults.take(project_id, query.offset, query.async_job_id)
        if scripted is not None:
            await self._scripted(scripted, query, receive, send, request_id)
            return
        faults = self.faults
        if faults.roll(faults.rate_429):
            extra = {} if faults.retry_after is None else {"Retry-After": faults.retry_after}
            await self._error(send, request_id, errors.THROTTLED, project_id, query, extra, "429")
            return
        if faults.roll(faults.rate_5xx):
            error = errors.gateway_error(faults.rng.choice((500, 502, 503)))
            await self._error(send, request_id, error, project_id, query, None, "5xx")
            return
        served = self._served(query)
        if faults.roll(faults.rate_malformed):
            body = self._malformed_body(served)
            self._log(query, 200, "malformed")
            await self._respond_list(send, receive, request_id, body)
            return
        if query.offset == 0 and _unfiltered(query) and faults.take_empty(project_id):
            self._log(query, 200, "empty")
            await self._respond_list(send, receive, request_id, EMPTY_LISTING)
            return
        if faults.unknown_id_error and not self._listed(served):
            error = errors.NO_SUCH_JOB
            await self._error(send, request_id, error, project_id, query, None, "unknown_id")
            return
        fault = None
        if query.offset > 0 and faults.roll(faults.drift_rate):
            self._drift(project_id)
            fault = "drift"
        body = self._page_body(served)
        self._log(query, 200, fault)
        await self._respond_list(send, receive, request_id, body)

    def _served(self, query: ListQuery) -> ListQuery:
        """The query the server answers: the one sent, bent by the standing switches."""
        faults = self.faults
        changes: dict[str, Any] = {}
        if faults.max_page is not None and query.limit > faults.max_page:
            changes["limit"] = faults.max_page
        if faults.ignore_offset and query.offset:
            changes["offset"] = 0
        if faults.ignore_id_filter and query.async_job_id is not None:
            changes["async_job_id"] = None
        return dataclasses.replace(query, **changes) if changes else query

    def _listed(self, query: ListQuery) -> bool:
        """False only for a by-id query whose job is not listed at all (whatever the
        query's other filters say)."""
        if query.async_job_id is None:
            return True
        total, _ = self.world.page(
            query.project_id, self.world.now(), limit=0, async_job_id=query.async_job_id
        )
        return total > 0

    def _check_token(self, scope: Scope, project_id: str) -> ApiError | None:
        token = _header(scope, b"x-auth-token")
        if token is not None and token in self.tokens:
            return None
        if token is not None and token in self.expired_tokens:
            return errors.TOKEN_EXPIRED
        if token is not None and self.iam is not None:
            return self.iam.check_token(token, project_id)
        return errors.AUTH_FAILED

    # -- bodies ---------------------------------------------------------------------

    def _page(self, query: ListQuery, t: float | None = None) -> tuple[int, list[dict[str, Any]]]:
        t = self.world.now() if t is None else t
        faults = self.faults
        total, page = self.world.page(
            query.project_id,
            t,
            offset=query.offset,
            limit=query.limit,
            sort_dir=query.sort_dir,
            status=query.status,
            domain_name=query.domain_name,
            user_name=query.user_name,
            async_job_id=query.async_job_id,
            shuffle_ties=faults.rng if faults.random_ties else None,
        )
        if faults.total_count is not None:
            total = faults.total_count
        return total, [job.record_at(t) for job in page]

    def _page_body(self, query: ListQuery) -> bytes:
        faults = self.faults
        # A shuffled or forced answer is not a function of the cache key.
        if not self._page_cache_size or faults.random_ties or faults.total_count is not None:
            total, records = self._page(query)
            return orjson.dumps({"total_count": total, "jobs": records})
        t = self.world.now()
        key = (query, t, self.world.version)
        cache = self._page_cache
        body = cache.get(key)
        if body is None:
            total, records = self._page(query, t)
            body = cache[key] = orjson.dumps({"total_count": total, "jobs": records})
            if len(cache) > self._page_cache_size:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return body

    def _malformed_body(self, query: ListQuery) -> bytes:
        """A 200 the client must reject: cut JSON, or JSON of the wrong shape."""
        total, records = self._page(query)
        variant = self.faults.rng.choice(("truncated", "jobs_not_list", "no_total_count"))
        if variant == "jobs_not_list":
            return orjson.dumps({"total_count": total, "jobs": {"0": records[:1]}})
        if variant == "no_total_count":
            return orjson.dumps({"jobs": records})
        full = orjson.dumps({"total_count": total, "jobs": records})
        return full[: max(1, len(full) // 2)]

    def _drift(self, project_id: str) -> None:
        """The list moves between page requests: a job arrives at the top (shifting
        later offsets under desc) and/or a visible one vanishes (shifting them the
        other way, so a live row goes unseen)."""
        rng = self.faults.rng
        action = rng.choice(("add", "vanish", "both"))
        world = self.world
        if action in ("add", "both"):
            domain, users = world.settings.domain_of(project_id)
            now = world.now()
            world.add_job(
                project_id,
                domain_name=domain,
                user_name=rng.choice(users),
                vanish_at=now + world.settings.wall_retention_s,
            )
        if action in ("vanish", "both"):
            # Pick by position: generating the whole listing just to choose one is waste.
            now = world.now()
            total, _ = world.page(project_id, now, limit=0)
            if total:
                _, picked = world.page(project_id, now, offset=rng.randrange(total), limit=1)
                world.vanish(project_id, picked[0].async_job_id)

    # -- scripted faults --------------------------------------------------------------

    async def _scripted(
        self,
        fault: ScriptedFault,
        query: ListQuery,
        receive: Receive,
        send: Send,
        request_id: str,
    ) -> None:
        if fault.kind == "drop":
            self._log(query, 0, "drop")
            await _drop(send)
            return
        if fault.kind == "stall":
            status, body = 200, self._page_body(query)
            if fault.status is not None or fault.body is not None:
                status, body = _scripted_response(fault)
            self._log(query, status, "stall")
            await _stall(send, receive, request_id, status, body, fault, self._date())
            return
        status, body = _scripted_response(fault)
        self._log(query, status, "scripted")
        await self._respond(send, request_id, status, body, fault.headers)

    # -- sending ----------------------------------------------------------------------

    async def _error(
        self,
        send: Send,
        request_id: str,
        error: ApiError,
        project_id: str | None,
        query: ListQuery | None = None,
        headers: Mapping[str, str] | None = None,
        fault: str | None = None,
    ) -> None:
        # Counted before the response goes out: a client holding its response must
        # already see the request in the stats (tests read them right after).
        if query is not None:
            self._log(query, error.status, fault)
        else:
            self.stats.record(RequestRecord(project_id, None, None, error.status, fault))
        await self._respond(send, request_id, error.status, error.body(), headers)

    async def _respond_list(
        self, send: Send, receive: Receive, request_id: str, body: bytes
    ) -> None:
        """A 200 list answer: at once, or trickled when ``trickle_s`` is set."""
        delay = self.faults.trickle_s
        if delay > 0:
            await _trickle(send, receive, request_id, body, delay, self._date())
        else:
            await self._respond(send, request_id, 200, body, None)

    async def _respond(
        self,
        send: Send,
        request_id: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _headers(request_id, len(body), headers, self._date()),
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _date(self) -> str | None:
        """The Date header's value: the world's now as an IMF-fixdate, None without one."""
        if self.faults.no_date_header:
            return None
        return formatdate(self.world.now(), usegmt=True)

    def _log(self, query: ListQuery, status: int, fault: str | None) -> None:
        self.stats.record(RequestRecord(query.project_id, query.offset, query.limit, status, fault))


# -- helpers ------------------------------------------------------------------------------


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _match_path(path: str) -> str | None:
    """The project id of a list path, or None for any other path."""
    if not (path.startswith(_PATH_PREFIX) and path.endswith(_PATH_SUFFIX)):
        return None
    project_id = path[len(_PATH_PREFIX) : len(path) - len(_PATH_SUFFIX)]
    if not project_id or "/" in project_id:
        return None
    return project_id


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _headers(
    request_id: str, length: int, extra: Mapping[str, str] | None, date: str | None
) -> list[tuple[bytes, bytes]]:
    merged = {"content-type": "application/json", "x-request-id": request_id}
    if date is not None:
        merged["date"] = date
    for key, value in (extra or {}).items():
        merged[key.lower()] = value
    # Always the real length: a "truncated" body is a short JSON text, not a short HTTP body.
    merged["content-length"] = str(length)
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]


def _parse_int(text: str | None, default: int) -> int | None:
    """A non-negative decimal integer, the default when absent, None when invalid."""
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _unfiltered(query: ListQuery) -> bool:
    return (
        query.async_job_id is None
        and query.status is None
        and query.domain_name is None
        and query.user_name is None
    )


def _parse_query(
    project_id: str, query_string: bytes, max_limit: int | None = MAX_LIMIT
) -> ListQuery | ApiError:
    """The list query, or the error for it. ``max_limit`` None accepts any limit."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True):
        # The first occurrence wins, as most gateways do.
        params.setdefault(key, value)

    limit = _parse_int(params.get("limit"), DEFAULT_LIMIT)
    offset = _parse_int(params.get("offset"), 0)
    if limit is None or offset is None or limit < 1:
        return errors.PAGE_INVALID
    if max_limit is not None and limit > max_limit:
        return errors.PAGE_OVER_LIMIT.with_msg(
            f"The page value exceeds the upper limit: limit must be at most {max_limit}."
        )
    # Empty means the default: the documentation's own example sends sort_key=&sort_dir=.
    sort_key = params.get("sort_key") or "create_time"
    if sort_key != "create_time":
        return errors.BAD_PARAMETER.with_msg("Invalid request parameter: sort_key.")
    sort_dir = params.get("sort_dir") or "desc"
    if sort_dir not in ("asc", "desc"):
        return errors.BAD_PARAMETER.with_msg("Invalid request parameter: sort_dir.")

    def text(name: str) -> str | None:
        # An empty filter value is treated as no filter (undocumented either way).
        return params.get(name) or None

    return ListQuery(
        project_id=project_id,
        offset=offset,
        limit=limit,
        sort_dir="asc" if sort_dir == "asc" else "desc",
        async_job_id=text("async_job_id"),
        status=text("status"),
        domain_name=text("domain_name"),
        user_name=text("user_name"),
    )


def _scripted_response(fault: ScriptedFault) -> tuple[int, bytes]:
    status = fault.status if fault.status is not None else 503
    body = fault.body
    if body is None:
        return status, errors.default_error(status).body()
    if isinstance(body, bytes):
        return status, body
    if isinstance(body, str):
        return status, body.encode()
    return status, orjson.dumps(body)


@runtime_checkable
class _Connection(Protocol):
    def abort(self) -> None: ...


def _transport(send: Send) -> _Connection | None:
    """The connection behind ``send`` when served by uvicorn, None in process.

    ASGI has no message for "cut the connection"; uvicorn's ``send`` is a bound
    method of its request cycle, which holds the transport (duck-typed: uvloop's
    transports are not asyncio.Transport subclasses). In process
    (httpx.ASGITransport) there is no connection to cut.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, _Connection) else None


def _in_process_disconnect(message: str) -> Exception:
    # What httpx raises for the same event on a real connection, so a client under
    # test in process sees the error it would see over the network.
    import httpx

    return httpx.RemoteProtocolError(message)


async def _drop(send: Send) -> None:
    transport = _transport(send)
    if transport is None:
        raise _in_process_disconnect("Server disconnected without sending a response.")
    # abort, not close: later writes (uvicorn's fallback 500) are discarded.
    transport.abort()
    await asyncio.sleep(0)


async def _stall(
    send: Send,
    receive: Receive,
    request_id: str,
    status: int,
    body: bytes,
    fault: ScriptedFault,
    date: str | None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _headers(request_id, len(body), fault.headers, date),
        }
    )
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    # Hang, but stop early if the client gives up, so a server shutdown is not held up.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until_disconnect(receive), fault.stall_s)
    transport = _transport(send)
    if transport is None:
        raise _in_process_disconnect("peer closed connection without sending complete message body")
    transport.abort()
    await asyncio.sleep(0)


async def _trickle(
    send: Send, receive: Receive, request_id: str, body: bytes, delay: float, date: str | None
) -> None:
    """Headers at once, then the body one byte every ``delay`` seconds. Stops as soon
    as the client disconnects (uvicorn says so through ``receive``; in process a
    client that gives up cancels this task), so a server shutdown is not held up."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": _headers(request_id, len(body), None, date),
        }
    )
    gone = asyncio.ensure_future(_until_disconnect(receive))
    try:
        last = len(body) - 1
        for position in range(len(body)):
            more = position < last
            await send(
                {
                    "type": "http.response.body",
                    "body": body[position : position + 1],
                    "more_body": more,
                }
            )
            if more:
                done, _ = await asyncio.wait({gone}, timeout=delay)
                if done:
                    return
    finally:
        gone.cancel()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
