"""AK/SK signing: the published vector byte for byte, and the official SDK's
Signer as an oracle over random requests (it is a test-only dependency: the
product never imports it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drs_pipeline.config import Secret
from drs_pipeline.drs.client import DrsClient, ProjectTarget
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.drs.signing import (
    UNSIGNED_HEADERS,
    AkSkAuth,
    AkSkCredentials,
    sign_request,
)
from drs_pipeline.simulator.clock import ManualClock
from drs_pipeline.simulator.gateway import AccessKey, AkSkGateway

PROJECT = "0123456789abcdef0123456789abcdef"
HOST = "drs.cn-south-2.myhuaweicloud.com"
VECTOR_DATE = datetime(2024, 1, 1, tzinfo=UTC)
VECTOR_CREDENTIALS = AkSkCredentials(Secret("AK_EXAMPLE"), Secret("SK_EXAMPLE"))
VECTOR_CANONICAL = """GET
/v5/0123456789abcdef0123456789abcdef/batch-async-jobs/
limit=10&offset=0&sort_dir=desc&sort_key=create_time&status=COMMIT_SUCCESS
content-type:application/json
host:drs.cn-south-2.myhuaweicloud.com
x-language:en-us
x-project-id:0123456789abcdef0123456789abcdef
x-sdk-date:20240101T000000Z

content-type;host;x-language;x-project-id;x-sdk-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"""
VECTOR_SIGNED = "content-type;host;x-language;x-project-id;x-sdk-date"

# Hypothesis keeps no example database in the checkout; every run draws afresh.
ORACLE = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_published_get_vector_byte_for_byte() -> None:
    client = httpx.Client(headers={"Content-Type": "application/json", "X-Language": "en-us"})
    request = client.build_request(
        "GET",
        f"https://{HOST}/v5/{PROJECT}/batch-async-jobs",
        params={
            "status": "COMMIT_SUCCESS",
            "offset": 0,
            "limit": 10,
            "sort_key": "create_time",
            "sort_dir": "desc",
        },
    )
    signature = sign_request(request, VECTOR_CREDENTIALS, PROJECT, VECTOR_DATE)

    assert signature.canonical_request == VECTOR_CANONICAL
    assert signature.string_to_sign == (
        "SDK-HMAC-SHA256\n20240101T000000Z\n"
        "1e17ab03a187d1b3273091747c9b63533d2752f1d939910331fcc229a857ca67"
    )
    expected = (
        f"SDK-HMAC-SHA256 Access=AK_EXAMPLE, SignedHeaders={VECTOR_SIGNED}, "
        "Signature=2fbcf31b43e52be04479f8c53cb320da4c76912cf2e424983eb72fa4a4d12e91"
    )
    assert request.headers["Authorization"] == expected
    # The query goes out exactly as signed; httpx's own headers are not signed.
    assert request.url.query == (
        b"limit=10&offset=0&sort_dir=desc&sort_key=create_time&status=COMMIT_SUCCESS"
    )
    assert {"accept", "accept-encoding", "connection", "user-agent"} <= set(request.headers)
    assert request.headers["X-Sdk-Date"] == "20240101T000000Z"
    assert request.headers["X-Project-Id"] == PROJECT


def test_published_post_vector() -> None:
    client = httpx.Client(headers={"Content-Type": "application/json", "X-Language": "en-us"})
    request = client.build_request(
        "POST", f"https://{HOST}/v5/{PROJECT}/jobs/batch-async-create", content=b'{"jobs":[]}'
    )
    signature = sign_request(request, VECTOR_CREDENTIALS, PROJECT, VECTOR_DATE)

    assert signature.canonical_request.startswith(
        f"POST\n/v5/{PROJECT}/jobs/batch-async-create/\n\ncontent-type:application/json\n"
    )
    # content-length is left to the transport, like the SDK leaves it.
    assert signature.signed_headers == VECTOR_SIGNED
    assert request.headers["Authorization"].endswith(
        "Signature=d7df68569871a64f63a514cfbe0a7d2a1c8ec6f980eb13c4e6dc36902a587aa8"
    )


def test_temporary_credentials_sign_the_security_token() -> None:
    credentials = AkSkCredentials(Secret("AK"), Secret("SK"), Secret("SECURITY-TOKEN"))
    request = httpx.Request("GET", f"https://{HOST}/v5/{PROJECT}/batch-async-jobs")
    signature = sign_request(request, credentials, PROJECT, VECTOR_DATE)
    assert request.headers["X-Security-Token"] == "SECURITY-TOKEN"
    assert signature.signed_headers == "host;x-project-id;x-sdk-date;x-security-token"
    assert sdk_authorization(
        "GET",
        f"/v5/{PROJECT}/batch-async-jobs",
        [],
        {},
        b"",
        "20240101T000000Z",
        ("AK", "SK", "SECURITY-TOKEN"),
        content_type=None,
    ) == (request.headers["Authorization"], f"/v5/{PROJECT}/batch-async-jobs")


def test_signing_again_replaces_the_previous_signature() -> None:
    request = httpx.Request("GET", f"https://{HOST}/v5/{PROJECT}/batch-async-jobs?b=2&a=1")
    first = sign_request(request, VECTOR_CREDENTIALS, PROJECT, VECTOR_DATE).authorization
    later = VECTOR_DATE + timedelta(seconds=1)
    second = sign_request(request, VECTOR_CREDENTIALS, PROJECT, later).authorization
    assert first != second
    assert request.headers.get_list("Authorization") == [second]
    assert request.headers.get_list("X-Sdk-Date") == ["20240101T000001Z"]
    assert request.url.query == b"a=1&b=2"


def test_no_secret_in_reprs() -> None:
    credentials = AkSkCredentials(Secret("AK_SECRETISH"), Secret("SK_SECRET"), Secret("STS_TOK"))
    auth = AkSkAuth(credentials, PROJECT)
    for text in (repr(auth), str(auth), repr(credentials)):
        for secret in ("AK_SECRETISH", "SK_SECRET", "STS_TOK"):
            assert secret not in text
    assert auth.redact("ak AK_SECRETISH not found") == "ak ******** not found"


def test_every_retry_is_signed_anew() -> None:
    """httpx runs the auth flow per request sent: a retry gets its own date and signature."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, json={"error_code": "APIGW.0601", "error_msg": "x"})
        return httpx.Response(200, json={"total_count": 0, "jobs": []})

    ticks = iter(VECTOR_DATE + timedelta(seconds=i) for i in range(100))
    auth = AkSkAuth(VECTOR_CREDENTIALS, PROJECT, clock=lambda: next(ticks))

    async def main() -> None:
        async def no_sleep(_: float) -> None:
            return None

        async with DrsClient(
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(max_attempts=3),
            sleep=no_sleep,
        ) as client:
            await client.fetch_page(
                ProjectTarget(PROJECT, f"https://{HOST}", auth), offset=0, limit=5
            )

    asyncio.run(main())
    assert len(seen) == 2
    dates = [r.headers["X-Sdk-Date"] for r in seen]
    assert dates[0] != dates[1]
    for request in seen:
        path, _, query = request.url.raw_path.decode().partition("?")
        pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
        expected = sdk_authorization(
            "GET",
            path,
            [(unquote(k), unquote(v)) for k, v in pairs],
            {"X-Language": "en-us"},
            b"",
            request.headers["X-Sdk-Date"],
            ("AK_EXAMPLE", "SK_EXAMPLE", None),
        )
        assert (request.headers["Authorization"], request.url.raw_path.decode()) == expected


# -- the SDK as an oracle ------------------------------------------------------------------


def sdk_authorization(
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    sdk_date: str,
    keys: tuple[str, str, str | None],
    *,
    host: str = HOST,
    content_type: str | None = "application/json",
) -> tuple[str, str]:
    """(Authorization, path and query sent) as huaweicloudsdkcore signs the same request.

    Driven as the SDK's own client drives it: the encoded path as resource_path,
    decoded query pairs, the headers it sets itself, BasicCredentials.sign_request
    (which adds X-Project-Id and X-Security-Token before signing).
    """
    ak, sk, security_token = keys
    header_params = dict(headers)
    if content_type is not None:
        header_params["Content-Type"] = content_type
    header_params["X-Sdk-Date"] = sdk_date
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=raw_path,
        query_params=list(query),
        header_params=header_params,
        body=body,
    )
    credentials = BasicCredentials(ak, sk, PROJECT)
    if security_token is not None:
        credentials.with_security_token(security_token)
    signed = credentials.sign_request(request)
    return signed.header_params["Authorization"], signed.uri


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
segments = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), max_size=10),
    min_size=1,
    max_size=5,
)
# Keys from a small pool as well, so that repeated keys are common.
keys = st.one_of(st.sampled_from(["a", "limit", "a b", "ü", "k=v", ""]), text)
queries = st.lists(st.tuples(keys, text), max_size=6)
# Names the transport owns or that signing sets are not drawn: they have their own tests.
RESERVED = UNSIGNED_HEADERS | {
    "host",
    "content-type",
    "x-sdk-date",
    "x-project-id",
    "x-security-token",
}
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,14}", fullmatch=True).filter(
    lambda n: n.lower() not in RESERVED
)
header_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16
).filter(lambda v: v.strip() != "")
headers = st.dictionaries(header_names, header_values, max_size=5).filter(
    lambda h: len({n.lower() for n in h}) == len(h)
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, object]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    return {
        "method": method,
        "segments": draw(segments),
        "query": draw(queries),
        "headers": draw(headers),
        "body": b"" if method in ("GET", "DELETE") else draw(st.binary(max_size=64)),
        "when": draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31))),
        "ak": draw(st.from_regex(r"[A-Z0-9]{1,24}", fullmatch=True)),
        "sk": draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)),
        "security_token": draw(st.none() | st.from_regex(r"[A-Za-z0-9+/=]{1,40}", fullmatch=True)),
        "host": draw(st.sampled_from([HOST, "127.0.0.1:8600"])),
    }


def build(case: dict[str, object]) -> tuple[httpx.Request, AkSkCredentials]:
    segs: list[str] = case["segments"]  # type: ignore[assignment]
    path = "/" + "/".join(quote(s, safe="") for s in segs)
    request = httpx.Request(
        str(case["method"]),
        f"https://{case['host']}{path}",
        params=case["query"],  # type: ignore[arg-type]
        headers=[  # UTF-8 on the wire, as the SDK sends non-ASCII values
            (n.encode(), v.encode("utf-8"))
            for n, v in case["headers"].items()  # type: ignore[attr-defined]
        ]
        + [(b"Content-Type", b"application/json")],
        content=case["body"],  # type: ignore[arg-type]
    )
    token = case["security_token"]
    credentials = AkSkCredentials(
        Secret(str(case["ak"])),
        Secret(str(case["sk"])),
        None if token is None else Secret(str(token)),
    )
    return request, credentials


@ORACLE
@given(requests())
def test_signatures_match_the_official_sdk(case: dict[str, object]) -> None:
    request, credentials = build(case)
    sent_path = request.url.raw_path.decode().partition("?")[0]
    when: datetime = case["when"]  # type: ignore[assignment]

    sign_request(request, credentials, PROJECT, when)

    expected = sdk_authorization(
        str(case["method"]),
        sent_path,
        list(case["query"]),  # type: ignore[call-overload]
        dict(case["headers"]),  # type: ignore[call-overload]
        case["body"],  # type: ignore[arg-type]
        when.strftime("%Y%m%dT%H%M%SZ"),
        (str(case["ak"]), str(case["sk"]), case["security_token"]),  # type: ignore[arg-type]
        host=str(case["host"]),
    )
    assert (request.headers["Authorization"], request.url.raw_path.decode()) == expected


@settings(max_examples=200, deadline=None, database=None)
@given(requests())
def test_the_simulators_gateway_accepts_what_we_sign(case: dict[str, object]) -> None:
    """The simulator's independent verifier agrees with the client (and so with the SDK)."""
    request, credentials = build(case)
    when: datetime = case["when"]  # type: ignore[assignment]
    sign_request(request, credentials, PROJECT, when)
    token = credentials.security_token
    gateway = AkSkGateway(
        {credentials.ak.reveal(): AccessKey(credentials.sk.reveal(), token and token.reveal())},
        ManualClock(when.replace(tzinfo=UTC).timestamp()),
    )
    raw_path, _, query = request.url.raw_path.partition(b"?")
    scope = {  # what uvicorn hands the app for this request
        "method": request.method,
        "path": unquote(raw_path.decode("ascii")),
        "query_string": query,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
    }
    assert gateway.verify(scope, request.content, PROJECT) is None
    assert gateway.stats.accepted == 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s: s.__setitem__("query_string", s["query_string"] + b"&x=1"), "signature"),
        (lambda s: s.__setitem__("method", "POST"), "signature"),
        (lambda s: s["headers"].append((b"x-language", b"zh-cn")), "signature"),
    ],
)
def test_the_gateway_rejects_a_tampered_request(tamper: object, reason: str) -> None:
    client = httpx.Client(headers={"Content-Type": "application/json", "X-Language": "en-us"})
    request = client.build_request("GET", f"https://{HOST}/v5/{PROJECT}/batch-async-jobs?a=1")
    sign_request(request, VECTOR_CREDENTIALS, PROJECT, VECTOR_DATE)
    gateway = AkSkGateway(
        {"AK_EXAMPLE": AccessKey("SK_EXAMPLE")}, ManualClock(VECTOR_DATE.timestamp())
    )
    raw_path, _, query = request.url.raw_path.partition(b"?")
    scope = {
        "method": "GET",
        "path": raw_path.decode(),
        "query_string": query,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
    }
    assert gateway.verify(dict(scope), b"", PROJECT) is None
    tamper(scope)  # type: ignore[operator]
    error = gateway.verify(scope, b"", PROJECT)
    assert error is not None and error.code == "APIGW.0301"
    assert gateway.stats.rejected[reason] == 1
