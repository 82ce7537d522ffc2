"""Normalization's clean-project path (``warehouse.clean_pages``) gives what the
careful per-record checks give, and steps aside on every kind of doubt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas.testing as pdt
import pytest

from drs_pipeline.simulator import ManualClock, World, WorldSettings
from drs_pipeline.simulator.model import ANCHOR_2026, default_projects
from drs_pipeline.warehouse import clean_pages, normalize
from drs_pipeline.warehouse.normalize import Normalized, normalize_pages
from tests.helpers import ObservedPage as Page

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def careful(pages: list[Page], monkeypatch: pytest.MonkeyPatch) -> Normalized:
    with monkeypatch.context() as patch:
        patch.setattr(normalize, "clean_columns", lambda pages: None)
        return normalize_pages(pages, project_id="p" * 32, region="cn-south-2")


def fast(pages: list[Page]) -> Normalized:
    assert clean_pages.clean_columns(pages) is not None, "expected the fast path"
    return normalize_pages(pages, project_id="p" * 32, region="cn-south-2")


def simulated_records(count: int, t: float) -> list[dict[str, Any]]:
    """Records as the simulator serves them: both time formats, every status."""
    settings = WorldSettings(seed=5, projects=default_projects(5, 1), arrival_interval_s=60.0)
    world = World(settings, ManualClock(t))
    project_id = settings.projects[0].project_id
    return [job.record_at(t) for job in world.list_jobs(project_id, t, sort_dir="asc")][:count]


def assert_same(a: Normalized, b: Normalized) -> None:
    pdt.assert_frame_equal(a.jobs, b.jobs)
    pdt.assert_frame_equal(a.rejected, b.rejected)


# -- normalization ------------------------------------------------------------------


def test_clean_pages_give_what_the_careful_checks_give(monkeypatch: pytest.MonkeyPatch) -> None:
    records = simulated_records(2500, ANCHOR_2026 + 40 * 86400)
    assert {len(r["create_time"]) for r in records} == {13, 20}  # epoch ms and ISO
    # Overlapping pages (the list moved), fetched out of order, two at the same time.
    pages = [
        Page(0, records[0:1000], T0 + timedelta(seconds=2)),
        Page(1000, records[900:1900], T0),
        Page(2000, records[1800:2500], T0 + timedelta(seconds=2)),
        Page(2500, [dict(r, status="LATER") for r in records[0:50]], T0 + timedelta(seconds=1)),
    ]
    out = fast(pages)
    assert_same(out, careful(pages, monkeypatch))
    assert len(out.jobs) == 2500 and out.rejected.empty


def test_many_distinct_owners_give_the_same_categoricals(monkeypatch: pytest.MonkeyPatch) -> None:
    # More tenants than an 8-bit code holds: the clean path's codes widen as pandas'.
    records = [
        dict(record, domain_name=f"tenant-{i:04d}", user_name=f"user-{i % 7}")
        for i, record in enumerate(simulated_records(400, ANCHOR_2026 + 40 * 86400))
    ]
    pages = [Page(0, records, T0)]
    out = fast(pages)
    assert_same(out, careful(pages, monkeypatch))
    assert len(out.jobs["domain_name"].cat.categories) == 400


def test_one_clean_page_and_no_page(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [Page(0, simulated_records(10, ANCHOR_2026 + 86400), T0)]
    assert_same(fast(pages), careful(pages, monkeypatch))
    empty = normalize_pages([], project_id="p" * 32, region="cn-south-2")
    assert_same(empty, careful([], monkeypatch))


GOOD = {
    "async_job_id": "0b0f8f3e-6c1c-4a8e-9d2c-5d6f7a8b9c0d",
    "status": "ASYNC_JOB_VALIDATING",
    "domain_name": "d",
    "user_name": "u",
    "create_time": "2024-07-25T08:48:41Z",
}

DOUBTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "not an object": lambda r: "text",
    "a list": lambda r: list(r.values()),
    "missing field": lambda r: {k: v for k, v in r.items() if k != "user_name"},
    "null field": lambda r: dict(r, domain_name=None),
    "number field": lambda r: dict(r, status=3),
    "list field": lambda r: dict(r, async_job_id=["x"]),
    "long field": lambda r: dict(r, user_name="u" * 257),
    "blank id": lambda r: dict(r, async_job_id=" "),
    "blank status": lambda r: dict(r, status="\t"),
    "empty time": lambda r: dict(r, create_time=""),
    "naive time": lambda r: dict(r, create_time="2024-07-25T08:48:41"),
    "fraction": lambda r: dict(r, create_time="2024-07-25T08:48:41.317Z"),
    "offset": lambda r: dict(r, create_time="2024-07-25T16:48:41+08:00"),
    "space": lambda r: dict(r, create_time="2024-07-25 08:48:41Z"),
    "30 February": lambda r: dict(r, create_time="2024-02-30T08:48:41Z"),
    "leap second": lambda r: dict(r, create_time="2016-12-31T23:59:60Z"),
    "before 2000": lambda r: dict(r, create_time="1999-12-31T23:59:59Z"),
    "from 2100": lambda r: dict(r, create_time="2100-01-01T00:00:00Z"),
    "epoch before 2000": lambda r: dict(r, create_time="1"),
    "epoch too long": lambda r: dict(r, create_time="12345678901234567"),
    "epoch with sign": lambda r: dict(r, create_time="+1721897321317"),
    "epoch in other digits": lambda r: dict(r, create_time="١٧٢١٨٩٧٣٢١٣١٧"),
    "epoch number": lambda r: dict(r, create_time=1721897321317),
    "non-ascii time": lambda r: dict(r, create_time="2024-07-25T08:48:4１Z"),
}


@pytest.mark.parametrize("doubt", sorted(DOUBTS))
def test_any_doubt_leaves_the_project_to_the_careful_checks(
    doubt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = DOUBTS[doubt](dict(GOOD, async_job_id="odd"))
    pages = [Page(0, [GOOD, odd], T0), Page(2, [dict(GOOD, async_job_id="other")], T0)]
    assert clean_pages.clean_columns(pages) is None
    assert_same(
        normalize_pages(pages, project_id="p" * 32, region="cn-south-2"),
        careful(pages, monkeypatch),
    )


def test_an_id_twice_in_a_page_is_a_doubt_but_across_pages_is_not() -> None:
    twice = [Page(0, [GOOD, dict(GOOD, status="OTHER")], T0)]
    assert clean_pages.clean_columns(twice) is None
    across = [Page(0, [GOOD], T0), Page(1, [dict(GOOD, status="NEWER")], T0 + timedelta(1))]
    assert fast(across).jobs["status"].tolist() == ["NEWER"]
