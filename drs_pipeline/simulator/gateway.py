"""AK/SK verification, as the API gateway in front of DRS does it.

The gateway recomputes the SDK-HMAC-SHA256 signature of what it received and
compares it with the ``Authorization`` header; a bad signature, an unknown AK
or an ``X-Sdk-Date`` more than 15 minutes off its clock is 401 APIGW.0301.

Written from docs/drs-api.md alone, sharing nothing with ``drs_pipeline.drs.signing``:
it is the independent check of the client's signing, so the two must not be
able to agree on the same mistake.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from drs_pipeline.simulator import errors
from drs_pipeline.simulator.clock import Clock
from drs_pipeline.simulator.errors import ApiError

Scope = MutableMapping[str, Any]

SCHEME = "SDK-HMAC-SHA256"
# The gateway's tolerance for the client's clock.
MAX_SKEW_S = 15 * 60
# Headers a signature must cover for the request to mean anything.
MUST_SIGN = ("host", "x-sdk-date", "x-project-id")


@dataclass(frozen=True)
class AccessKey:
    """The secret half of an AK; ``security_token`` for temporary credentials."""

    sk: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


@dataclass
class GatewayStats:
    accepted: int = 0
    # Why requests were turned away, by short reason.
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Authorization:
    access: str
    signed_headers: tuple[str, ...]
    signature: str


class AkSkGateway:
    """Verifies signed requests. ``keys`` (AK to AccessKey) may change while serving."""

    def __init__(
        self, keys: Mapping[str, AccessKey], clock: Clock, *, max_skew_s: float = MAX_SKEW_S
    ) -> None:
        self.keys: dict[str, AccessKey] = dict(keys)
        self.clock = clock
        self.max_skew_s = max_skew_s
        self.stats = GatewayStats()

    @staticmethod
    def is_signed(scope: Scope) -> bool:
        value = _header_values(scope, "authorization")
        return bool(value) and value[0].startswith(SCHEME + " ")

    def verify(self, scope: Scope, body: bytes, project_id: str) -> ApiError | None:
        """None when the request is authentic, else the error the gateway answers."""
        problem, error = self._problem(scope, body, project_id)
        if problem is None:
            self.stats.accepted += 1
            return None
        self.stats.rejected[problem] += 1
        return error

    def _problem(
        self, scope: Scope, body: bytes, project_id: str
    ) -> tuple[str | None, ApiError | None]:
        def refuse(reason: str, detail: str) -> tuple[str, ApiError]:
            return reason, errors.AUTH_FAILED.with_msg(
                f"Incorrect IAM authentication information: {detail}"
            )

        authorization = _parse_authorization(_header_values(scope, "authorization")[0])
        if authorization is None:
            return refuse("malformed", "the Authorization header is malformed")
        key = self.keys.get(authorization.access)
        if key is None:
            # Real gateways name the AK they did not find; so does this one, which
            # checks that the client keeps it out of its errors and database.
            return refuse("unknown_ak", f"ak {authorization.access} does not exist")
        signed = authorization.signed_headers
        missing = [name for name in MUST_SIGN if name not in signed]
        if key.security_token is not None and "x-security-token" not in signed:
            missing.append("x-security-token")
        if missing:
            return refuse("unsigned", f"headers not signed: {', '.join(missing)}")
        headers: dict[str, str] = {}
        for name in signed:
            values = _header_values(scope, name)
            if not values:
                return refuse("missing_header", f"signed header {name} is missing")
            headers[name] = ",".join(values)
        when = _sdk_date(headers["x-sdk-date"])
        if when is None:
            return refuse("bad_date", "X-Sdk-Date is not like 20240101T000000Z")
        if abs(when - self.clock.now()) > self.max_skew_s:
            return refuse("skew", "X-Sdk-Date is more than 15 minutes off the server's clock")
        if key.security_token is not None and not hmac.compare_digest(
            headers["x-security-token"].encode(), key.security_token.encode()
        ):
            return refuse("security_token", "the security token does not match the AK")
        expected = _signature(scope, headers, body, key.sk)
        if not hmac.compare_digest(expected.encode(), authorization.signature.encode()):
            return refuse("signature", "verify aksk signature fail")
        if headers["x-project-id"] != project_id:
            return "project", errors.BAD_PROJECT
        return None, None


def _parse_authorization(value: str) -> _Authorization | None:
    """``SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex``."""
    scheme, _, rest = value.partition(" ")
    if scheme != SCHEME:
        return None
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, content = item.strip().partition("=")
        if not sep:
            return None
        parts[name] = content
    try:
        access, signed, signature = parts["Access"], parts["SignedHeaders"], parts["Signature"]
    except KeyError:
        return None
    if not access or not signed or not signature:
        return None
    return _Authorization(access, tuple(signed.split(";")), signature)


def _sdk_date(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _signature(scope: Scope, headers: Mapping[str, str], body: bytes, sk: str) -> str:
    """What the signature of this request must be, from the request as received."""
    path = "/".join(quote(segment, safe="~") for segment in str(scope.get("path", "/")).split("/"))
    if not path.endswith("/"):
        path += "/"
    pairs = parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"), True)
    query = "&".join(quote(k, safe="~") + "=" + quote(v, safe="~") for k, v in sorted(pairs))
    lines = [str(scope.get("method", "GET")).upper(), path, query]
    lines += [f"{name}:{value}" for name, value in headers.items()]
    lines += ["", ";".join(headers), hashlib.sha256(body).hexdigest()]
    canonical = "\n".join(lines)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    to_sign = f"{SCHEME}\n{headers['x-sdk-date']}\n{digest}"
    return hmac.new(sk.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _header_values(scope: Scope, name: str) -> list[str]:
    wanted = name.encode("latin-1")
    return [
        bytes(value).decode("utf-8", "replace").strip()
        for key, value in scope.get("headers", ())
        if bytes(key).lower() == wanted
    ]
