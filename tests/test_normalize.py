"""Normalization of raw records: columns, time formats, rejects with reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from drs_pipeline.warehouse.normalize import normalize_pages
from tests.helpers import ObservedPage as Page

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "async_job_id": job_id,
        "status": "ASYNC_JOB_VALIDATING",
        "domain_name": "d",
        "user_name": "u",
        "create_time": "2022-11-07T06:41:08Z",
        **fields,
    }


def test_both_time_formats_and_offsets_are_the_same_instant() -> None:
    records = [
        job("a", create_time="2024-07-25T08:48:41.317Z"),
        job("b", create_time="1721897321317"),
        job("c", create_time="2024-07-25T16:48:41.317+08:00"),
        job("d", create_time="2024-07-25T16:48:41.317+0800"),
    ]
    out = normalize_pages([Page(0, records, T0)], project_id="p", region="r")
    assert out.rejected.empty
    assert set(out.jobs["create_time"]) == {pd.Timestamp("2024-07-25T08:48:41.317Z")}
    assert list(out.jobs.columns) == [
        "project_id",
        "region",
        "async_job_id",
        "status",
        "domain_name",
        "user_name",
        "create_time",
        "observed_at",
    ]
    assert (out.jobs["observed_at"] == pd.Timestamp(T0)).all()


def test_unknown_statuses_and_extra_fields_are_kept() -> None:
    out = normalize_pages(
        [Page(0, [job("a", status="ASYNC_JOB_COMPLETED", extra={"x": 1})], T0)],
        project_id="p",
        region="r",
    )
    assert out.jobs["status"].tolist() == ["ASYNC_JOB_COMPLETED"]


def test_newest_observation_wins_across_pages() -> None:
    pages = [
        Page(0, [job("a", status="OLD")], T0),
        Page(1, [job("a", status="NEW")], T0 + timedelta(seconds=2)),
        Page(2, [job("a", status="MIDDLE")], T0 + timedelta(seconds=1)),
    ]
    out = normalize_pages(pages, project_id="p", region="r")
    assert out.jobs["status"].tolist() == ["NEW"] and out.rejected.empty


def test_every_kind_of_bad_record_is_rejected_with_its_reason() -> None:
    records = [
        "not an object",
        job("missing", user_name=None),
        {k: v for k, v in job("absent").items() if k != "domain_name"},
        job("wrong-type", status=["x"]),
        job("empty-id", async_job_id=" "),
        job("long", user_name="u" * 257),
        job("bad-time", create_time="2022-02-30T00:00:00Z"),
        job("naive", create_time="2022-02-01T00:00:00"),
        job("number-time", create_time=1721897321317),
        job("old", create_time="1"),
        job("dup"),
        job("dup", status="OTHER"),
    ]
    out = normalize_pages([Page(3000, records, T0)], project_id="p", region="r")
    assert out.jobs["async_job_id"].tolist() == ["dup"]
    assert out.jobs["status"].tolist() == ["ASYNC_JOB_VALIDATING"]
    reasons = out.rejected["reason"].tolist()
    assert len(reasons) == len(records) - 1
    assert all(r.startswith("page offset 3000: ") for r in reasons)
    expected = [
        "not a JSON object",
        "user_name is missing",
        "domain_name is missing",
        "status is not a string",
        "async_job_id is empty",
        "user_name is over 256",
        "create_time is not ISO-8601",
        "create_time is not ISO-8601",
        "create_time is not a string",
        "outside 2000..2100",
        "duplicate of an earlier record",
    ]
    for reason, words in zip(reasons, expected, strict=True):
        assert words in reason, (reason, words)
    assert out.rejected["record"].tolist()[0] == '"not an object"'


def test_empty_input_gives_typed_empty_frames() -> None:
    out = normalize_pages([], project_id="p", region="r")
    assert out.jobs.empty and out.rejected.empty
    assert str(out.jobs["create_time"].dtype) == "datetime64[us, UTC]"
