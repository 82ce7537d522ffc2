"""AK/SK request signing (SDK-HMAC-SHA256), as an ``httpx.Auth``.

The algorithm is the one Huawei Cloud's SDKs use (docs/drs-api.md, Authentication):
a canonical request (method, path, sorted query, signed headers, body hash) is
hashed into a string to sign, which is HMAC-SHA256'd with the SK. The official
SDK is not imported here; tests compare this module with it as an oracle.

httpx runs ``auth_flow`` for every request it sends, so each retry is signed
again with a fresh ``X-Sdk-Date`` (the gateway rejects dates more than 15
minutes off its clock).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote

import httpx

from drs_pipeline.config import Secret
from drs_pipeline.drs.auth import CredentialAuth

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
DATE_HEADER = "X-Sdk-Date"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# Headers the HTTP library or a proxy adds, drops or rewrites on the way (hop by
# hop, compression, length, agent). Signing them could make a correct request
# fail verification behind a proxy; the SDK never signs them either, because
# its HTTP library adds them after signing. Authorization is the output.
UNSIGNED_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "authorization",
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
    }
)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AkSkCredentials:
    """An access key pair; ``security_token`` only for temporary credentials."""

    ak: Secret = field(repr=False)
    sk: Secret = field(repr=False)
    security_token: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Signature:
    """The intermediate forms, kept for tests and for debugging a 401 by eye."""

    canonical_request: str
    string_to_sign: str
    signed_headers: str
    authorization: str


def _encode(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX of its UTF-8.
    return quote(text, safe="~")


def canonical_path(raw_path: str) -> str:
    """Each segment decoded then encoded again, with a trailing ``/`` always added."""
    path = "/".join(_encode(segment) for segment in unquote(raw_path).split("/"))
    return path if path.endswith("/") else path + "/"


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Pairs sorted as decoded text (key, then value), each side encoded.

    This is also the query string sent: the gateway rebuilds it from what it
    receives, so sending anything but this form risks a mismatch.
    """
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(pairs))


def signed_header_values(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased name to stripped value, for the headers that are signed.

    Names holding ``_`` are never signed (the algorithm says so: some proxies
    drop such headers). Repeated headers are joined with ``,`` as HTTP allows.
    """
    values: dict[str, list[str]] = {}
    for name, value in headers:
        lowered = name.lower()
        if "_" in lowered or lowered in UNSIGNED_HEADERS:
            continue
        values.setdefault(lowered, []).append(value.strip())
    return {name: ",".join(parts) for name, parts in sorted(values.items())}


def sign(
    *,
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    sdk_date: str,
    ak: str,
    sk: str,
) -> Signature:
    """Sign a request given in its parts; ``headers`` as ``signed_header_values`` made them
    (they must include ``host`` and ``x-sdk-date``)."""
    signed = ";".join(headers)
    canonical = "\n".join(
        (
            method.upper(),
            canonical_path(raw_path),
            canonical_query(query),
            "".join(f"{name}:{value}\n" for name, value in headers.items()),
            signed,
            hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256,
        )
    )
    to_sign = "\n".join(
        (ALGORITHM, sdk_date, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
    )
    digest = hmac.new(sk.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    authorization = f"{ALGORITHM} Access={ak}, SignedHeaders={signed}, Signature={digest}"
    return Signature(canonical, to_sign, signed, authorization)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("iso-8859-1")


def sign_request(
    request: httpx.Request,
    credentials: AkSkCredentials,
    project_id: str,
    now: datetime,
) -> Signature:
    """Sign ``request`` in place: date, project, security token, Authorization,
    stripped header values and the canonical query string."""
    when = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    sdk_date = when.strftime(DATE_FORMAT)
    # Anything left from an earlier signing of this request is replaced.
    for stale in ("Authorization", DATE_HEADER, "X-Security-Token", "X-Project-Id"):
        request.headers.pop(stale, None)
    request.headers[DATE_HEADER] = sdk_date
    request.headers["X-Project-Id"] = project_id
    if credentials.security_token is not None:
        request.headers["X-Security-Token"] = credentials.security_token.reveal()

    # Values are sent stripped, exactly as they are signed (UTF-8 on the wire).
    raw = [(_decode(name), _decode(value).strip()) for name, value in request.headers.raw]
    request.headers = httpx.Headers([(n.encode(), v.encode("utf-8")) for n, v in raw])
    raw_path, _, query = request.url.raw_path.decode("ascii").partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    signature = sign(
        method=request.method,
        raw_path=raw_path,
        query=pairs,
        headers=signed_header_values(raw),
        body=request.content,
        sdk_date=sdk_date,
        ak=credentials.ak.reveal(),
        sk=credentials.sk.reveal(),
    )
    request.headers["Authorization"] = signature.authorization
    request.url = request.url.copy_with(query=canonical_query(pairs).encode("ascii") or None)
    return signature


class AkSkAuth(CredentialAuth):
    """Signs every request of one project with an AK/SK pair."""

    # The body is hashed into the signature, so httpx must read it first.
    requires_request_body = True

    def __init__(
        self, credentials: AkSkCredentials, project_id: str, clock: Clock = _utc_now
    ) -> None:
        self._credentials = credentials
        self._project_id = project_id
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, self._credentials, self._project_id, self._clock())
        yield request

    def secrets(self) -> Iterable[Secret]:
        token = self._credentials.security_token
        return (self._credentials.ak, self._credentials.sk, *(() if token is None else (token,)))

    def __repr__(self) -> str:
        return f"AkSkAuth(project_id={self._project_id!r}, ak=********, sk=********)"
