"""The fast path of normalization: a project whose every record is clean, straight to columns.

Almost every page the API returns is clean: five string fields, short, not empty,
a ``create_time`` in one of the documented shapes, no id twice in a page. For
those, every step here is one C-level pass over a column (``map``, ``set``,
``max``, ``str.join``, numpy), never a Python loop per record, where
``normalize_pages_carefully`` checks each record with pandas string methods to
name the first reason each bad record fails (docs/decisions/0006-normalization.md).

It only ever answers for a project in which it finds nothing wrong. On the
first doubt (a missing field, a non-string, an id twice in a page, a time in
another shape or out of range...) it returns None and the careful path does
its work on the whole project, so rejected records and their reasons come
from one place only. On clean input both give the same frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from drs_pipeline.warehouse.records import (
    EARLIEST_CREATE_TIME,
    FIELDS,
    LATEST_CREATE_TIME,
    MAX_EPOCH_MS_DIGITS,
    MAX_FIELD_LENGTH,
    ObservedPage,
)

# The bounds of create_time in microseconds since the epoch (Timestamp.value is in ns).
EARLIEST_US = EARLIEST_CREATE_TIME.value // 1000
LATEST_US = LATEST_CREATE_TIME.value // 1000
_FIELD_GETTERS = tuple(itemgetter(name) for name in FIELDS)
# "2022-11-07T06:41:08Z", the shape the API documents: 20 ASCII characters.
_ISO_Z_LENGTH = 20
_DIGIT_POSITIONS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPARATOR_POSITIONS = np.array([4, 7, 10, 13, 16, 19])
_SEPARATOR_BYTES = np.frombuffer(b"--T::Z", dtype=np.uint8)
_SECONDS_TENS = 17


@dataclass(frozen=True)
class CleanColumns:
    """Every record of a project, one list, array or categorical per field, in the order
    a stable sort on the observation time gives (pages in order of fetch, records in
    page order)."""

    async_job_id: list[str]
    status: pd.Categorical[Any]
    domain_name: pd.Categorical[Any]
    user_name: pd.Categorical[Any]
    create_time_us: np.ndarray
    observed_at_us: np.ndarray
    # No id seen twice (in different pages): nothing to deduplicate.
    distinct: bool


def clean_columns(pages: Sequence[ObservedPage]) -> CleanColumns | None:
    """The project's records as columns, or None unless every one of them is clean."""
    # Rows in the order a stable sort on observed_at puts them: within a page they
    # share it, so sorting the pages is enough.
    order = sorted(range(len(pages)), key=lambda i: pages[i].fetched_at)
    records: list[Any] = []
    for i in order:
        records += pages[i].jobs
    if not records:
        return None
    try:
        # One C-level pass per field. KeyError for a missing field, TypeError for a
        # record that is no object.
        ids, statuses, domains, users, times = (
            list(map(getter, records)) for getter in _FIELD_GETTERS
        )
    except (KeyError, TypeError):
        return None
    del records
    sizes = [len(pages[i].jobs) for i in order]
    if not _all_short_strings(ids, non_empty=True):
        return None
    distinct = len(set(ids)) == len(ids)
    if not distinct and not _distinct_per_page(ids, sizes):
        return None
    status = _few_short_strings(statuses, non_empty=True)
    domain = _few_short_strings(domains, non_empty=False)
    user = _few_short_strings(users, non_empty=False)
    if status is None or domain is None or user is None:
        return None
    create_us = _create_times_us(times)
    if create_us is None:
        return None
    # Timestamp.value is nanoseconds since the epoch (a naive time read as UTC).
    fetched = [pd.Timestamp(pages[i].fetched_at).value // 1000 for i in order]
    observed_us = np.repeat(np.array(fetched, dtype=np.int64), sizes)
    return CleanColumns(ids, status, domain, user, create_us, observed_us, distinct)


def _all_short_strings(column: list[Any], *, non_empty: bool) -> bool:
    try:
        # str.__len__ and str.strip refuse anything but a string (TypeError).
        longest = max(map(str.__len__, column))
        return longest <= MAX_FIELD_LENGTH and (not non_empty or all(map(str.strip, column)))
    except TypeError:
        return False


def _few_short_strings(column: list[Any], *, non_empty: bool) -> pd.Categorical[Any] | None:
    """For columns of a handful of distinct values (statuses, tenants, users): check
    the distinct values, not every row, and build the categorical from them.

    Codes are looked up in a dict of the distinct values rather than by
    ``pd.Categorical(column)``, which hashes every row again in pandas
    (docs/decisions/0006-normalization.md).
    """
    try:
        distinct = set(column)
    except TypeError:  # a list or an object: unhashable
        return None
    if not all(
        type(value) is str
        and len(value) <= MAX_FIELD_LENGTH
        and (not non_empty or value.strip() != "")
        for value in distinct
    ):
        return None
    # Sorted, as pd.Categorical orders string categories.
    categories = sorted(distinct)
    code_of = {value: code for code, value in enumerate(categories)}
    codes = np.fromiter(
        map(code_of.__getitem__, column), dtype=_code_dtype(len(categories)), count=len(column)
    )
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories))


def _code_dtype(categories: int) -> type[np.signedinteger[Any]]:
    """The smallest integer type pandas itself would give the codes."""
    for dtype in (np.int8, np.int16, np.int32):
        if categories <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def _distinct_per_page(ids: list[Any], sizes: list[int]) -> bool:
    # Some id repeats: fine across pages (the list moved), not within one.
    start = 0
    for size in sizes:
        page = ids[start : start + size]
        if len(set(page)) != size:
            return False
        start += size
    return True


def _create_times_us(times: list[Any]) -> np.ndarray | None:
    """Microseconds since the epoch of each create_time, or None if one is not in a
    fast shape (ISO-8601 ``...SSZ``, epoch milliseconds in ASCII digits) or is out of
    2000..2100."""
    try:
        lengths = np.fromiter(map(str.__len__, times), dtype=np.int64, count=len(times))
    except TypeError:
        return None
    is_iso = lengths == _ISO_Z_LENGTH
    is_epoch = ~is_iso & (lengths >= 1) & (lengths <= MAX_EPOCH_MS_DIGITS)
    if not (is_iso | is_epoch).all():
        return None
    out = np.empty(len(times), dtype=np.int64)
    if is_iso.any():
        parsed = _iso_z_us(list(compress(times, is_iso)))
        if parsed is None:
            return None
        out[is_iso] = parsed
    if is_epoch.any():
        parsed = _epoch_ms_us(list(compress(times, is_epoch)))
        if parsed is None:
            return None
        out[is_epoch] = parsed
    if ((out < EARLIEST_US) | (out >= LATEST_US)).any():
        return None
    return out


def _ascii_bytes(texts: list[str]) -> np.ndarray | None:
    try:
        return np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        return None


def _iso_z_us(texts: list[str]) -> np.ndarray | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` strings, all 20 characters: their shape checked on the
    bytes, their value parsed by numpy's C datetime parser rather than by pandas with
    the regex (docs/decisions/0006-normalization.md)."""
    raw = _ascii_bytes(texts)
    if raw is None:
        return None
    chars = raw.reshape(len(texts), _ISO_Z_LENGTH)
    if not (chars[:, _SEPARATOR_POSITIONS] == _SEPARATOR_BYTES).all():
        return None
    # Subtracting in uint8 wraps anything below "0" round to >= 246.
    digits = chars[:, _DIGIT_POSITIONS] - np.uint8(ord("0"))
    # A leap second (:60) is left to the careful path to judge.
    if (digits > 9).any() or (chars[:, _SECONDS_TENS] > ord("5")).any():
        return None
    # The 19 characters before "Z" are a naive ISO time, read as UTC.
    naive = np.ascontiguousarray(chars[:, : _ISO_Z_LENGTH - 1]).view(f"S{_ISO_Z_LENGTH - 1}")
    try:
        # ValueError for a date that does not exist (30 February, month 13, hour 24).
        seconds = naive.ravel().astype("datetime64[s]")
    except ValueError:
        return None
    result: np.ndarray = seconds.astype(np.int64) * 1_000_000
    return result


def _epoch_ms_us(texts: list[str]) -> np.ndarray | None:
    raw = _ascii_bytes(texts)
    # ASCII digits only: int() would also take "+1", " 1", "1_0" or other scripts' digits.
    if raw is None or ((raw < ord("0")) | (raw > ord("9"))).any():
        return None
    millis = np.array(texts, dtype=np.int64)
    if (millis > LATEST_US // 1000).any():
        return None
    result: np.ndarray = millis * 1000
    return result
