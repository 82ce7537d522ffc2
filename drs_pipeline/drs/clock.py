"""The API server's clock as its answers show it, against ours.

Every 2xx to 4xx answer of an origin server with a clock carries a ``Date`` header
(RFC 9110 6.6.1), to the second. A page keeps it beside ``fetched_at`` (our clock, when the
answer was read), and a project's sync records the offset between the two, so
that times the server states (``create_time``) can be put on our clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

# A Date header names its second: the server's true time lies within the next one,
# so half a second centres the estimate.
DATE_RESOLUTION_CENTRE_S = 0.5


class DatedPage(Protocol):
    """A page as the offset reads it (``drs.client.Page``)."""

    @property
    def fetched_at(self) -> datetime: ...
    @property
    def server_date(self) -> datetime | None: ...
    @property
    def requested_at(self) -> datetime | None: ...


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms a
    recipient must still read) as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # HTTP-dates are UTC; asctime's form (and a "-0000" zone) parse without a zone.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def server_clock_offset_s(pages: Iterable[DatedPage]) -> float | None:
    """Server clock minus ours, in seconds: the median over the pages that carry a
    server date of ``server_date + 0.5 s`` less the middle of the request's flight (the
    server stamped its answer between sending and reading it: taking the end alone
    would make the offset low by the transfer time); None when no page has a date."""
    offsets = []
    for page in pages:
        if page.server_date is None:
            continue
        sent = page.requested_at or page.fetched_at
        local = sent + (page.fetched_at - sent) / 2
        offsets.append((page.server_date - local).total_seconds() + DATE_RESOLUTION_CENTRE_S)
    return statistics.median(offsets) if offsets else None
