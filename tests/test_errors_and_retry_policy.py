"""Unit tests of the pure parts: error bodies, Retry-After, backoff bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest

from drs_pipeline.drs.errors import DrsApiError, DrsTransportError, Where, parse_error_body
from drs_pipeline.drs.retry import RetryPolicy, retry_after_seconds

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error_code": "DRS.10000001", "error_msg": "Failed."}, ("DRS.10000001", "Failed.")),
        ({"error_code": "DRS.M00211", "error_msg": "over"}, ("DRS.M00211", "over")),
        (
            {"errorCode": "APIGW.0308", "errorMsg": "limit:200,time:1 second"},
            ("APIGW.0308", "limit:200,time:1 second"),
        ),
        ({"code": "APIGW.0301", "message": "bad"}, ("APIGW.0301", "bad")),
        ({"error": {"code": "APIGW.0307", "message": "expired"}}, ("APIGW.0307", "expired")),
        ({"error": {"error_code": "X.1", "error_msg": "m"}}, ("X.1", "m")),
        ({"error_code": 12}, ("12", None)),
    ],
)
def test_error_body_shapes(body: object, expected: tuple[str | None, str | None]) -> None:
    assert parse_error_body(orjson.dumps(body)) == expected


def test_error_body_that_is_not_json_keeps_a_snippet() -> None:
    code, msg = parse_error_body(b"<html>" + b"x" * 500)
    assert code is None and msg is not None and msg.startswith("<html>") and len(msg) < 210
    assert parse_error_body(b"") == (None, None)


def test_api_error_message_names_everything() -> None:
    error = DrsApiError(
        Where("p" * 32, 2000),
        status_code=403,
        error_code="DRS.M00261",
        error_msg="invalid project",
        request_id="req-1",
    )
    error.attempts = 3
    assert str(error) == (
        f"project {'p' * 32}, page offset 2000: HTTP 403 DRS.M00261: invalid project "
        "(X-Request-Id req-1) after 3 attempts"
    )
    assert not error.retryable
    lookup = DrsTransportError(Where("p", 0, "job-1"), "timed out")
    assert str(lookup) == "project p, job job-1, page offset 0: timed out" and lookup.retryable


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("Sat, 28 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 28 Nov 2026 11:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after(value: str, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_delay_s=1.0, max_delay_s=8.0, jitter=0.5)
    error = DrsTransportError(Where("p"), "reset")
    rng = random.Random(1)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay_before_retry(error, attempt, rng, NOW) for _ in range(50)]
        assert all(base * 0.5 <= d <= base * 1.5 for d in delays)
        assert len(set(delays)) > 1


def test_should_retry_respects_attempts_budget_and_kind() -> None:
    policy = RetryPolicy(max_attempts=3, max_total_wait_s=10)
    transient = DrsTransportError(Where("p"), "reset")
    final = DrsApiError(
        Where("p"), status_code=401, error_code="APIGW.0301", error_msg="", request_id=None
    )
    assert policy.should_retry(transient, 1, 0, 1)
    assert not policy.should_retry(transient, 3, 0, 1)
    assert not policy.should_retry(transient, 1, 9.5, 1)
    assert not policy.should_retry(final, 1, 0, 1)
