"""Typed errors of the DRS client.

Every error says where it happened (project, page offset) and carries what the
API said about it (HTTP status, DRS error code and message, X-Request-Id), so a
failed sync can be reported and traced with Huawei support without a debugger.
None of them ever holds a credential: requests' headers are not kept.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import orjson

# An error body that is not the documented JSON is kept as its first characters.
SNIPPET_LENGTH = 200


@dataclass(frozen=True)
class Where:
    """The request an error belongs to."""

    project_id: str
    offset: int | None = None
    async_job_id: str | None = None
    # The list filters of a narrowed listing, as sent: "status=COMMIT_SUCCESS".
    filters: str | None = None

    def describe(self) -> str:
        parts = [f"project {self.project_id}"]
        if self.async_job_id is not None:
            parts.append(f"job {self.async_job_id}")
        if self.filters:
            parts.append(f"listing {self.filters}")
        if self.offset is not None:
            parts.append(f"page offset {self.offset}")
        return ", ".join(parts)


class DrsError(Exception):
    """Base class: something went wrong talking to DRS for one project."""

    # Whether retrying the same request may succeed.
    retryable: bool = False

    def __init__(self, where: Where, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.request_id = request_id
        self.message = message
        # How many times the request was sent before giving up; set by the retry loop.
        self.attempts = 1

    def __str__(self) -> str:
        text = f"{self.where.describe()}: {self.message}"
        if self.request_id:
            text += f" (X-Request-Id {self.request_id})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    @property
    def error_code(self) -> str | None:
        return None


class DrsApiError(DrsError):
    """The API answered with an HTTP error status."""

    def __init__(
        self,
        where: Where,
        *,
        status_code: int,
        error_code: str | None,
        error_msg: str | None,
        request_id: str | None,
        retry_after: str | None = None,
    ) -> None:
        code = error_code or "no error_code"
        message = f"HTTP {status_code} {code}: {error_msg or 'no error message'}"
        super().__init__(where, message, request_id=request_id)
        self.status_code = status_code
        self._error_code = error_code
        self.error_msg = error_msg
        self.retry_after = retry_after
        self.retryable = status_code == 429 or status_code >= 500

    @property
    def error_code(self) -> str | None:
        return self._error_code


class DrsResponseError(DrsError):
    """A 200 whose body is not the documented shape (malformed or truncated JSON)."""

    retryable = True


class DrsProtocolError(DrsError):
    """Answers no sane server gives: a count beyond any plan, a server that ignores
    ``offset``. Asking again would only repeat them, so the project fails at once."""


class DrsApiNotServedError(DrsApiError):
    """The gateway has no such API at this endpoint (404 APIGW.0101): the region or
    the endpoint does not serve DRS v5."""

    def __init__(self, where: Where, *, endpoint: str, **answer: Any) -> None:
        super().__init__(where, **answer)
        self.message = (
            f"the DRS v5 API is not served at {endpoint} "
            f"(HTTP {self.status_code} {self.error_code}: {self.error_msg or 'no such API'}); "
            "check the project's region and endpoint"
        )


class IamError(Exception):
    """IAM did not issue a token (wrong password, locked user, IAM down).

    Raised inside an auth flow, which does not know which page it is sending;
    the client turns it into an ``IamAuthError`` that does. Its message names
    the account and the user, never the password.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.request_id = request_id
        self.retryable = retryable


class IamAuthError(DrsError):
    """A page could not be requested because IAM would not issue a token for it.

    Retryable only when IAM itself was unavailable (429, 5xx, no connection): a
    refused password is never tried again, since each try counts towards IAM's
    lockout of the user.
    """

    def __init__(self, where: Where, cause: IamError) -> None:
        super().__init__(where, cause.message, request_id=cause.request_id)
        self.status_code = cause.status_code
        self._error_code = cause.error_code
        self.retryable = cause.retryable

    @property
    def error_code(self) -> str | None:
        return self._error_code


class DrsTransportError(DrsError):
    """No usable response: connection refused or reset, timeout, a body cut off."""

    retryable = True


class DrsDeadlineError(DrsTransportError):
    """The sync's own deadline (``sync_timeout_s``) passed: not retried, since no
    time is left to retry in."""

    retryable = False


class DrsCertificateError(DrsTransportError):
    """The endpoint's TLS certificate was refused (unknown CA, wrong host, expired).

    Not retried: the same certificate will be refused again, and a wrong CA bundle
    or endpoint should fail in seconds, not after the whole backoff.
    """

    retryable = False


def certificate_refusal(exc: BaseException) -> str | None:
    """Why TLS verification refused the peer, if that is what ``exc`` comes from.

    httpx wraps the ``ssl`` error (as the cause of httpcore's, the cause of its own),
    so the chain is walked rather than the type of ``exc`` alone looked at.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            # "CERTIFICATE_VERIFY_FAILED: self-signed certificate": OpenSSL's code, which
            # people search for, and its reason, without the C source location.
            reason = current.verify_message or str(current)
            return f"{current.reason}: {reason}" if current.reason else reason
        current = current.__cause__ or current.__context__
    return None


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """The (error_code, error_msg) of an error body, in any of the shapes DRS uses.

    Seen in the wild: ``error_code/error_msg``, ``errorCode/errorMsg``,
    ``code/message``, and each of those nested one level under ``error``.
    Codes come in several lengths (DRS.10000001, DRS.M00211, APIGW.0308): the
    length is never validated.
    """
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, _snippet(body)
    if not isinstance(document, dict):
        return None, _snippet(body)
    if isinstance(document.get("error"), dict):
        document = document["error"]
    for code_key, msg_key in (
        ("error_code", "error_msg"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ):
        if code_key in document or msg_key in document:
            code, msg = document.get(code_key), document.get(msg_key)
            return (
                None if code is None else str(code),
                None if msg is None else str(msg),
            )
    return None, _snippet(body)


def _snippet(body: bytes) -> str | None:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    return text if len(text) <= SNIPPET_LENGTH else text[:SNIPPET_LENGTH] + "..."
