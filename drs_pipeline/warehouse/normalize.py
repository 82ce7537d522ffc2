"""Raw API records into a typed DataFrame, with the unreadable ones kept aside.

Column-wise: fields are pulled out once per field, checked with vectorized
pandas operations, and every failing record gets the first reason it failed,
naming the page offset and the field. A rejected record is never dropped: it
goes to ``drs.rejected_records`` with that reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from drs_pipeline.warehouse.clean_pages import CleanColumns, clean_columns
from drs_pipeline.warehouse.records import (
    EARLIEST_CREATE_TIME,
    FIELDS,
    LATEST_CREATE_TIME,
    MAX_EPOCH_MS_DIGITS,
    MAX_FIELD_LENGTH,
    NON_EMPTY_FIELDS,
    ObservedPage,
)

# `2022-11-07T06:41:08Z`, with optional fraction, `Z` or a numeric offset: a time
# without an offset is ambiguous and rejected rather than guessed to be UTC.
ISO_8601_WITH_OFFSET = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})"
# Epoch milliseconds as a decimal string, as other v5 endpoints return them.
EPOCH_MILLISECONDS = rf"\d{{1,{MAX_EPOCH_MS_DIGITS}}}"

# Fields with a handful of distinct values are categorical: DuckDB reads a category
# column as an ENUM (integer codes and a few strings), where a str column costs it
# one Python string conversion per row, holding the GIL
# (docs/decisions/0006-normalization.md).
JOB_DTYPES = {
    "project_id": "category",
    "region": "category",
    "async_job_id": "str",
    "status": "category",
    "domain_name": "category",
    "user_name": "category",
    "create_time": "datetime64[us, UTC]",
    "observed_at": "datetime64[us, UTC]",
}
REJECTED_COLUMNS = ("record", "reason")


@dataclass(frozen=True)
class Normalized:
    # One row per async_job_id: its newest observation.
    jobs: pd.DataFrame
    rejected: pd.DataFrame


def normalize_pages(pages: Sequence[ObservedPage], *, project_id: str, region: str) -> Normalized:
    # Nearly every project is clean: clean_pages turns it into columns far faster than
    # the checks below, and gives up on the first doubt
    # (docs/decisions/0006-normalization.md).
    clean = normalize_clean_pages(pages, project_id=project_id, region=region)
    if clean is not None:
        return clean
    return normalize_pages_carefully(pages, project_id=project_id, region=region)


def normalize_clean_pages(
    pages: Sequence[ObservedPage], *, project_id: str, region: str
) -> Normalized | None:
    """What ``normalize_pages`` gives, if no record of the project is in doubt; None
    otherwise."""
    clean = clean_columns(pages)
    if clean is None:
        return None
    return _clean_normalized(clean, project_id=project_id, region=region)


def normalize_pages_carefully(
    pages: Sequence[ObservedPage], *, project_id: str, region: str
) -> Normalized:
    """Every record checked, each bad one kept aside with the first reason it fails:
    an order of magnitude slower than the clean path (docs/decisions/0006-normalization.md)."""
    records: list[Any] = [record for page in pages for record in page.jobs]
    sizes = [len(page.jobs) for page in pages]
    frame = pd.DataFrame(
        {
            "page": np.repeat(np.arange(len(pages)), sizes),
            "page_offset": np.repeat([page.offset for page in pages], sizes),
            "observed_at": pd.to_datetime([page.fetched_at for page in pages], utc=True)
            .as_unit("us")
            .repeat(sizes),
        }
    )
    is_object = np.fromiter((type(r) is dict for r in records), dtype=bool, count=len(records))
    for name in FIELDS:
        frame[name] = pd.Series(
            [r.get(name) if type(r) is dict else None for r in records], dtype=object
        )

    reasons = _Reasons(frame["page_offset"])
    reasons.add(~is_object, "record is not a JSON object")
    for name in FIELDS:
        values = frame[name]
        reasons.add(values.isna(), f"field {name} is missing or null")
        is_str = values.map(lambda value: isinstance(value, str)).astype(bool)
        reasons.add(~is_str, f"field {name} is not a string")
        text = values.where(is_str, "")
        reasons.add(
            text.str.len() > MAX_FIELD_LENGTH, f"field {name} is over {MAX_FIELD_LENGTH} characters"
        )
        if name in NON_EMPTY_FIELDS:
            reasons.add(text.str.strip() == "", f"field {name} is empty")

    create_time = frame["create_time"].where(reasons.none, "").astype(str)
    parsed = _parse_create_time(create_time)
    unreadable = reasons.none & parsed.isna()
    reasons.add(
        unreadable,
        "field create_time is not ISO-8601 with an offset nor epoch milliseconds: "
        + create_time.str.slice(0, 40),
    )
    out_of_range = reasons.none & ((parsed < EARLIEST_CREATE_TIME) | (parsed >= LATEST_CREATE_TIME))
    reasons.add(out_of_range, "field create_time is outside 2000..2100: " + create_time)
    frame["create_time"] = parsed

    # The same id twice in one page is the API contradicting itself: keep the
    # first, set the others aside. Across pages it is expected (the list moved),
    # and the newest observation wins below.
    # Only rows still good are compared: a rejected id may be a list or an object,
    # which cannot be hashed, and one such record must not fail the whole project.
    comparable = frame[["page", "async_job_id"]].where(reasons.none, None)
    repeated = reasons.none & comparable.duplicated(keep="first")
    reasons.add(repeated, "duplicate of an earlier record with the same async_job_id in this page")

    good = frame[reasons.none.to_numpy()]
    newest = good.sort_values("observed_at", kind="stable").drop_duplicates(
        "async_job_id", keep="last"
    )
    jobs = pd.DataFrame(
        {
            "project_id": project_id,
            "region": region,
            "async_job_id": newest["async_job_id"],
            "status": newest["status"],
            "domain_name": newest["domain_name"],
            "user_name": newest["user_name"],
            "create_time": newest["create_time"],
            "observed_at": newest["observed_at"],
        },
        columns=list(JOB_DTYPES),
    )
    jobs = jobs.astype(JOB_DTYPES).reset_index(drop=True)

    bad = ~reasons.none.to_numpy()
    rejected = pd.DataFrame(
        {
            "record": [_raw_json(r) for r, b in zip(records, bad, strict=True) if b],
            "reason": reasons.text[bad].astype(str).to_list(),
        },
        columns=list(REJECTED_COLUMNS),
        dtype="str",
    )
    return Normalized(jobs=jobs, rejected=rejected)


def _clean_normalized(clean: CleanColumns, *, project_id: str, region: str) -> Normalized:
    """What the checks above give for a project without a bad record, from its columns."""
    n = len(clean.async_job_id)

    def text(values: Sequence[str] | np.ndarray) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=object), dtype="str", copy=False)

    def utc(microseconds: np.ndarray) -> pd.DatetimeIndex:
        # Naive microsecond values read as UTC: the JOB_DTYPES time type, no conversion.
        return pd.DatetimeIndex(microseconds.view("datetime64[us]"), tz="UTC")

    def constant(value: str) -> pd.Series:
        # Every row the one category: codes of zeros, no per-row work at all.
        codes = np.zeros(n, dtype=np.int8)
        return pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype([value])))

    jobs = pd.DataFrame(
        {
            "project_id": constant(project_id),
            "region": constant(region),
            "async_job_id": text(clean.async_job_id),
            "status": clean.status,
            "domain_name": clean.domain_name,
            "user_name": clean.user_name,
            "create_time": utc(clean.create_time_us),
            "observed_at": utc(clean.observed_at_us),
        },
        copy=False,
    )
    if not clean.distinct:
        # Rows are in observation order already: the newest of each job is its last.
        jobs = jobs.drop_duplicates("async_job_id", keep="last").reset_index(drop=True)
        # As the careful path's astype gives them: only the values still present.
        for name in ("status", "domain_name", "user_name"):
            jobs[name] = jobs[name].cat.remove_unused_categories()
    rejected = pd.DataFrame(columns=list(REJECTED_COLUMNS), dtype="str")
    return Normalized(jobs=jobs, rejected=rejected)


class _Reasons:
    """The first reason each row failed, as ``page offset N: <reason>``."""

    def __init__(self, page_offset: pd.Series) -> None:
        self.prefix = "page offset " + page_offset.astype(str) + ": "
        self.text = pd.Series(None, index=page_offset.index, dtype=object)

    @property
    def none(self) -> pd.Series:
        return self.text.isna()

    def add(self, mask: pd.Series | np.ndarray, reason: str | pd.Series) -> None:
        mask = pd.Series(np.asarray(mask, dtype=bool), index=self.text.index)
        fresh = mask & self.text.isna()
        if fresh.any():
            self.text = self.text.where(~fresh, self.prefix + reason)


def _parse_create_time(text: pd.Series) -> pd.Series:
    """ISO-8601 with an offset, or epoch milliseconds; anything else is NaT."""
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    epoch = text.str.fullmatch(EPOCH_MILLISECONDS)
    if epoch.any():
        # Capped at the upper bound: 16 digits reach past what a datetime64 holds (year
        # 318857), and one such record must be rejected as out of range, not fail the
        # whole project with OutOfBoundsDatetime.
        millis = text[epoch].astype("int64").clip(upper=LATEST_CREATE_TIME.value // 10**6)
        parsed[epoch] = pd.to_datetime(millis, unit="ms", utc=True).astype("datetime64[us, UTC]")
    iso = text.str.fullmatch(ISO_8601_WITH_OFFSET)
    if iso.any():
        parsed[iso] = pd.to_datetime(text[iso], format="ISO8601", utc=True, errors="coerce").astype(
            "datetime64[us, UTC]"
        )
    return parsed


def _raw_json(record: Any) -> str:
    try:
        return orjson.dumps(record).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the stdlib writes them as is.
        return json.dumps(record, ensure_ascii=False, default=repr)
