"""IAM password tokens: obtained once, shared, renewed before they end.

``POST {iam_endpoint}/v3/auth/tokens`` with an IAM user's password, scoped to
one project by id, returns the token in the ``X-Subject-Token`` header and its
end in ``token.expires_at`` (docs/drs-api.md, Authentication). One token serves
every request of its scope during a sync; an async lock makes concurrent
requests that find it due wait for one renewal instead of each asking IAM.

The token is renewed a margin before it ends, and at once when the gateway
answers 401 APIGW.0307 ("the token must be updated"): that request is then
sent once more with the new token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from drs_pipeline.config import Secret
from drs_pipeline.drs.auth import CredentialAuth
from drs_pipeline.drs.errors import IamError, certificate_refusal, parse_error_body

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

TOKENS_PATH = "/v3/auth/tokens"
TOKEN_EXPIRED_CODE = "APIGW.0307"  # noqa: S105 - an error code
# Renew this long before the end (IAM tokens live 24 h), but never more than a
# tenth of a token's life, so that short-lived tokens are still used.
RENEW_MARGIN = timedelta(minutes=5)
RENEW_MARGIN_FRACTION = 0.1


@dataclass(frozen=True)
class IamAccount:
    """Who asks IAM for tokens. ``password_env`` is only named in messages."""

    iam_endpoint: str
    domain_name: str
    user_name: str
    password_env: str
    password: Secret = field(repr=False)

    def describe(self) -> str:
        return f"user {self.user_name!r} of account {self.domain_name!r}"


@dataclass(frozen=True)
class _Token:
    value: Secret = field(repr=False)
    # On our clock: when to stop using it.
    renew_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _HideSubjectToken(logging.Filter):
    """httpcore logs every response's headers at DEBUG, and IAM's answer carries
    the token in one (``X-Subject-Token``): its value is masked before any
    handler sees the record."""

    _HEADER = re.compile(r"(b['\"]x-subject-token['\"],\s*b)(['\"]).*?\2", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "subject-token" in message.lower():
            record.msg, record.args = self._HEADER.sub(r"\1'********'", message), ()
        return True


def _hide_tokens_from_transport_logs() -> None:
    for name in ("httpcore.http11", "httpcore.http2"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideSubjectToken) for f in logger.filters):
            logger.addFilter(_HideSubjectToken())


class IamTokenSource:
    """The token of one scope (IAM endpoint, account, user, project)."""

    def __init__(
        self,
        account: IamAccount,
        project_id: str,
        *,
        clock: Clock = _utc_now,
        timeout: httpx.Timeout | None = None,
        account_lock: asyncio.Lock | None = None,
        refusals: dict[tuple[object, ...], IamError] | None = None,
    ) -> None:
        self.account = account
        self.project_id = project_id
        self._clock = clock
        self._timeout = timeout or httpx.Timeout(30.0, connect=10.0)
        # Both shared by the sources of one account (IamTokenCache): a password IAM
        # refused is not sent again, even for another project of the same user,
        # since each try counts towards IAM's lockout; the lock makes a second
        # project wait for the first one's answer instead of asking alongside it.
        self._lock = account_lock if account_lock is not None else asyncio.Lock()
        self._refusals = refusals if refusals is not None else {}
        self._current: _Token | None = None
        # Every token this source obtained, to scrub from text a server echoes.
        self._obtained: list[Secret] = []
        # Token requests sent to IAM, for logs and tests.
        self.requests = 0
        _hide_tokens_from_transport_logs()

    async def token(self) -> Secret:
        """A token that is not due for renewal; fetched if needed."""
        current = self._current
        if current is not None and self._clock() < current.renew_at:
            return current.value
        async with self._lock:
            # Another request may have renewed it while this one waited.
            current = self._current
            if current is None or self._clock() >= current.renew_at:
                current = self._current = await self._fetch()
            return current.value

    async def renew(self, rejected: Secret) -> Secret:
        """A new token after the gateway rejected ``rejected`` as expired."""
        async with self._lock:
            current = self._current
            if current is None or current.value == rejected:
                current = self._current = await self._fetch()
            return current.value

    async def _fetch(self) -> _Token:
        refused = self._refusals.get(_account_key(self.account))
        if refused is not None:
            raise IamError(
                refused.message,
                status_code=refused.status_code,
                error_code=refused.error_code,
                request_id=refused.request_id,
            )
        self._current = None
        self.requests += 1
        log.info(
            "asking IAM %s for a token: %s, project %s",
            self.account.iam_endpoint,
            self.account.describe(),
            self.project_id,
        )
        failure: str | None = None
        retryable = True
        try:
            response = await self._post()
        except httpx.TimeoutException as exc:
            failure = f"timed out ({type(exc).__name__})"
        except httpx.TransportError as exc:
            certificate_problem = certificate_refusal(exc)
            if certificate_problem is not None:
                # The same certificate would be refused again: no retry.
                failure, retryable = f"TLS certificate refused ({certificate_problem})", False
            else:
                failure = f"unreachable ({type(exc).__name__})"
        if failure is not None:
            # Raised outside the except block: httpx's exception holds the request,
            # whose body holds the password, and must not ride along as __context__.
            raise self._error(failure, retryable=retryable)
        fetched_at = self._clock()
        request_id = response.headers.get("X-Request-Id") or response.headers.get("X-IAM-Trace-Id")
        if response.status_code not in (200, 201):
            code, message = parse_error_body(response.content)
            status = response.status_code
            retryable = status == 429 or status >= 500
            shown = f" {code}" if code and code != str(status) else ""
            text = f"HTTP {status}{shown}: {self._redact(message or 'no error message')}"
            if not retryable:
                text += f" (not retried; check {self.account.password_env} and the user)"
            error = self._error(
                text,
                status_code=status,
                error_code=code,
                request_id=request_id,
                retryable=retryable,
            )
            if not retryable:
                self._refusals[_account_key(self.account)] = error
            raise error
        value = response.headers.get("X-Subject-Token", "").strip()
        if not value:
            raise self._error(
                "no X-Subject-Token header in its answer", request_id=request_id, retryable=True
            )
        lifetime = _lifetime(response.content, fetched_at)
        if lifetime is None:
            raise self._error(
                "token.expires_at missing, unreadable or past",
                request_id=request_id,
                retryable=True,
            )
        margin = min(RENEW_MARGIN, lifetime * RENEW_MARGIN_FRACTION)
        token = _Token(Secret(value), renew_at=fetched_at + lifetime - margin)
        self._obtained.append(token.value)
        return token

    async def _post(self) -> httpx.Response:
        account = self.account
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "domain": {"name": account.domain_name},
                            "name": account.user_name,
                            "password": account.password.reveal(),
                        }
                    },
                },
                "scope": {"project": {"id": self.project_id}},
            }
        }
        # A client per token: one request a day per scope does not need a pool,
        # and nothing is left open when the sync ends.
        async with httpx.AsyncClient(
            timeout=self._timeout, verify=True, follow_redirects=False
        ) as http:
            return await http.post(
                account.iam_endpoint + TOKENS_PATH,
                params={"nocatalog": "true"},
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json;charset=utf8"},
            )

    def _error(self, what: str, **details: Any) -> IamError:
        return IamError(
            f"IAM {self.account.iam_endpoint} gave no token to {self.account.describe()}: {what}",
            **details,
        )

    def _redact(self, text: str) -> str:
        password = self.account.password.reveal()
        return text.replace(password, "********") if password else text

    def secrets(self) -> tuple[Secret, ...]:
        return (self.account.password, *self._obtained)


def _account_key(account: IamAccount) -> tuple[object, ...]:
    return (account.iam_endpoint, account.domain_name, account.user_name, account.password)


def _lifetime(body: bytes, fetched_at: datetime) -> timedelta | None:
    """How long the token lives, measured on IAM's clock when it says when it
    issued it (so that our clock being off does not matter), else on ours."""
    try:
        document = orjson.loads(body)
        token = document["token"]
        expires_at = _instant(token["expires_at"])
        issued = token.get("issued_at")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    try:
        start = _instant(issued) if issued is not None else fetched_at
    except (TypeError, ValueError):
        start = fetched_at
    lifetime = expires_at - start
    return lifetime if lifetime > timedelta(0) else None


def _instant(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError("not a string")
    # "2024-01-02T03:04:05.678000Z"; fromisoformat reads Z and fractions in 3.11.
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


class IamTokenCache:
    """The token sources of one sync, one per scope."""

    def __init__(self, *, clock: Clock = _utc_now, timeout: httpx.Timeout | None = None) -> None:
        self._clock = clock
        self._timeout = timeout
        self._sources: dict[tuple[object, ...], IamTokenSource] = {}
        self._locks: dict[tuple[object, ...], asyncio.Lock] = {}
        self._refusals: dict[tuple[object, ...], IamError] = {}

    def source(self, account: IamAccount, project_id: str) -> IamTokenSource:
        account_key = _account_key(account)
        key = (*account_key, project_id)
        if key not in self._sources:
            self._sources[key] = IamTokenSource(
                account,
                project_id,
                clock=self._clock,
                timeout=self._timeout,
                account_lock=self._locks.setdefault(account_key, asyncio.Lock()),
                refusals=self._refusals,
            )
        return self._sources[key]

    @property
    def requests(self) -> int:
        return sum(source.requests for source in self._sources.values())


class IamTokenAuth(CredentialAuth):
    """``X-Auth-Token`` from an ``IamTokenSource``; renews and resends once on APIGW.0307."""

    def __init__(self, source: IamTokenSource) -> None:
        self._source = source

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._source.token()
        request.headers["X-Auth-Token"] = token.reveal()
        response = yield request
        if response.status_code != 401:
            return
        # The body says whether the token expired (APIGW.0307) or is wrong.
        await response.aread()
        if _error_code(response) == TOKEN_EXPIRED_CODE:
            log.info(
                "token of %s for project %s expired early (%s); renewing it",
                self._source.account.describe(),
                self._source.project_id,
                TOKEN_EXPIRED_CODE,
            )
            token = await self._source.renew(token)
            request.headers["X-Auth-Token"] = token.reveal()
            yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("IamTokenAuth needs an httpx.AsyncClient")

    def secrets(self) -> Iterable[Secret]:
        return self._source.secrets()

    def __repr__(self) -> str:
        return f"IamTokenAuth({self._source.account.describe()}, project {self._source.project_id})"


def _error_code(response: httpx.Response) -> str | None:
    code, _ = parse_error_body(response.content)
    return code
