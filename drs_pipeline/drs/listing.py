"""Listing one project completely, on any server the DRS documentation allows.

Offset paging over a list that moves, whose ties in ``create_time`` may come back
in any order, from a server that promises no page size and no true count, is not
a snapshot. So a listing is a protocol, not a loop
(docs/decisions/0001-moving-list-protocol.md):

1. A *pass* pages the listing. Its first page gives ``total_count`` and the
   stride the server really serves (fewer rows than asked while more exist: the
   server's own cap). The other offsets are planned lazily, a window at a time,
   and fetched concurrently; a full page at the end is followed by a look for
   more, an empty one ends the plan, a short one in the middle is filled.
2. Every record of every pass counts: the listing holds the union of what its
   passes saw (normalization keeps each job's newest observation).
3. The listing is complete when the jobs its pages prove were listed when some
   pass began cover the count that pass began with (``Tally``: a job that arrived
   since, or one seen only before and maybe gone since, proves nothing). Otherwise
   it is listed again, up to ``max_listing_attempts``.
4. Passes that keep disagreeing are narrowed instead of repeated: the API's own
   filters (``status``, then ``domain_name``, then ``user_name``) split the
   project into smaller listings, each of which a single page, one consistent
   answer, may hold.
5. A listing still short lands what it saw and is incomplete, which marks
   nothing gone. Which known jobs really left is then settled by id
   (``drs.absence``), never by the listing alone.

Answers no sane server gives fail the project at once (``DrsProtocolError``): a
count beyond ``max_jobs_per_project``, a server that ignores ``offset``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import operator
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np

from drs_pipeline.drs.client import LIST_FILTERS, DrsClient, Page, ProjectTarget
from drs_pipeline.drs.errors import DrsError, DrsProtocolError, Where

log = logging.getLogger(__name__)
T = TypeVar("T")

# Identical pages at other offsets before the server is said to ignore ``offset``:
# a page of one or two rows can repeat by chance inside a tie group, eight rows in
# the same order cannot.
_REPEATED_ROWS_TO_IGNORE_OFFSET = 8


@dataclass(frozen=True)
class _Count:
    """The count an unfiltered pass began with: how many jobs were listed at one moment."""

    epoch: int
    total_count: int
    # The jobs its page listed, so listed at that moment whenever they were created.
    ids: frozenset[str]
    # The second the server answered in (its Date); None when it sent none.
    second: int | None


@dataclass
class _Seen:
    """One pass's records: after which count (``epoch``), with each one's id and creation."""

    epoch: int
    ids: set[str]
    # Per record: its id (None without a usable one), its create_time in epoch seconds
    # (UNREAD when it cannot be read), and whether it is a row beyond its id's first
    # in its page (no usable id, or the id again: a page is one answer).
    record_ids: list[str | None]
    created: np.ndarray
    extra: np.ndarray
    # Records on the pass's first page, the one its count came with.
    first_page: int


@dataclass
class Tally:
    """What a listing's passes prove about the counts they began with.

    A count is covered when the jobs known to have been listed at its moment are
    as many: then they are every job listed then, so every job listed throughout
    the listing was seen. A job is known to have been listed at a count's moment
    if its page held it, if it was seen both before and after it (a job that
    leaves does not come back), or if it was seen after it and created in an
    earlier second (create_time and the server's Date, both to the second: a job
    created in the same second may be newer than the count, so it is not taken).
    Jobs seen only before a count may have left since, and jobs created since are
    not in it: neither may stand in for a job every pass missed. A row that no id
    can match across passes (no usable id, or its id twice in one page) counts as a
    job of its own, as many as the most any one pass since the count showed, unless
    its create_time places it after the count. A create_time that cannot be read
    (bad input) places a record before every count.
    """

    ids: set[str] = field(default_factory=set)
    counts: list[_Count] = field(default_factory=list)
    seen: list[_Seen] = field(default_factory=list)
    # How many counts were taken: a pass added now was answered after each of them.
    epoch: int = 0

    def add_pass(self, pages: list[Page], *, counted: bool = True) -> None:
        """Add a pass's pages; ``counted``: its first page's count is one to cover
        (an unfiltered pass of the listing, or a pass of a narrowed one)."""
        if counted:
            self.epoch += 1
            first = pages[0]
            self.counts.append(
                _Count(
                    self.epoch,
                    first.total_count,
                    frozenset(i for i in map(job_id_of, first.jobs) if i is not None),
                    _second(first.server_date),
                )
            )
        seen = _seen(pages, self.epoch)
        self.seen.append(seen)
        self.ids |= seen.ids

    def forget_counts(self) -> None:
        """Cover only counts taken from now on (what was seen still counts as seen)."""
        self.counts.clear()

    def listed_at(self, count: _Count) -> int:
        """How many jobs the passes prove were listed when ``count`` was taken."""
        after = [seen for seen in self.seen if seen.epoch >= count.epoch]
        earlier = [seen.ids for seen in self.seen if seen.epoch < count.epoch]
        # One pass, as nearly always: its ids as they are, not a copy.
        seen_after = after[0].ids if len(after) == 1 else set().union(*(s.ids for s in after))
        before: set[str] = set().union(*earlier)
        newer: set[str | None] = set()
        extra = 0
        for seen in after:
            if count.second is None:
                young = np.ones(len(seen.created), dtype=bool)
                # A row beyond its id's first cannot be seen again in another pass (no
                # id matches it): it counts unless its create_time places it after the
                # count, which without a Date nothing can.
                rows = seen.extra.copy()
            else:
                young = seen.created >= count.second
                rows = seen.extra & ~young
            newer.update(seen.record_ids[i] for i in np.flatnonzero(young))
            if seen.epoch == count.epoch and seen is after[0]:
                # Its own first page: every row of it was listed then.
                rows[: seen.first_page] = seen.extra[: seen.first_page]
            extra = max(extra, int(rows.sum()))
        newer.discard(None)
        unproven = newer - count.ids - before
        return len(seen_after) - len(unproven) + extra

    def covered(self) -> _Count | None:
        """The count the passes cover, if any."""
        return next((c for c in self.counts if self.listed_at(c) >= c.total_count), None)

    @property
    def jobs(self) -> int:
        """Distinct jobs seen (each row without a usable id one of its own)."""
        return len(self.ids) + max((int(seen.extra.sum()) for seen in self.seen), default=0)


@dataclass
class Listing:
    """Everything seen of one project in one sync."""

    project_id: str
    pages: list[Page] = field(default_factory=list)
    # Unfiltered passes, and the narrowed listings tried.
    passes: int = 0
    narrowed: int = 0
    complete: bool = False
    # The count the last unfiltered pass began with (its first page's).
    total_count: int = 0
    # Why the listing is not complete, for the sync report.
    incomplete_reason: str | None = None
    tally: Tally = field(default_factory=Tally)

    def seen_ids(self) -> set[str]:
        """Ids of every record seen, malformed ones included (they still exist)."""
        return set(self.tally.ids)

    def add(self, pages: list[Page], *, counted: bool = True) -> None:
        """Add a pass's pages; ``counted``: an unfiltered pass, whose count is one to cover."""
        self.pages.extend(pages)
        self.tally.add_pass(pages, counted=counted)

    def forget_counts(self) -> None:
        """Judge the listing by the counts of later passes only: the earlier ones came
        with answers the history contradicts (what they showed still counts as seen)."""
        self.tally.forget_counts()


async def list_project(client: DrsClient, target: ProjectTarget) -> Listing:
    """Every job of ``target``'s project: passes, then narrowed listings if needed."""
    listing = Listing(project_id=target.project_id)
    await list_again(client, target, listing, client.paging.max_listing_attempts)
    if not listing.complete:
        await _narrow(client, target, listing)
    return listing


async def list_again(
    client: DrsClient, target: ProjectTarget, listing: Listing, passes: int = 1
) -> None:
    """Up to ``passes`` more unfiltered passes, until the listing is complete."""
    for _ in range(passes):
        listing.passes += 1
        pages = await list_pass(client, target)
        listing.add(pages)
        listing.total_count = pages[0].total_count
        listing.complete = listing.tally.covered() is not None
        if listing.complete:
            listing.incomplete_reason = None
            return
        listing.incomplete_reason = _shortfall(listing)
        log.info(
            "project %s: pass %d: %s; listing again",
            target.project_id,
            listing.passes,
            listing.incomplete_reason,
        )


async def list_pass(
    client: DrsClient, target: ProjectTarget, filters: Mapping[str, str] | None = None
) -> list[Page]:
    """One pass over a listing, its pages in offset order."""
    return await _Pass(client, target, dict(filters or {})).run()


class _Pass:
    """The pages of one pass, planned lazily: at most ``client.window`` in flight."""

    def __init__(self, client: DrsClient, target: ProjectTarget, filters: dict[str, str]) -> None:
        self.client = client
        self.target = target
        self.filters = filters
        self.max_jobs = client.paging.max_jobs_per_project
        self.pages: list[Page] = []
        self.first_ids: frozenset[str] | None = None
        self.repeats_of_first = 0
        self.most_counted = 0

    async def fetch(self, offset: int, limit: int) -> Page:
        page = await self.client.fetch_page(
            self.target, offset=offset, limit=limit, filters=self.filters
        )
        log.debug(
            "project %s%s: page offset %d: %d jobs of total_count %d",
            self.target.project_id,
            f" ({self.filters})" if self.filters else "",
            offset,
            len(page.jobs),
            page.total_count,
        )
        return page

    async def run(self) -> list[Page]:
        size = self.client.paging.page_size
        first = await self.fetch(0, size)
        self.accept(first)
        served = len(first.jobs)
        if 0 < served != size and served >= first.total_count:
            # One answer held the whole listing (a server that ignores limit included).
            return self.pages
        # Fewer rows than asked while the count says more exist: the server's own cap.
        # Pages are still asked for ``size`` rows (a first answer that was short once
        # must not make every page short), at offsets ``stride`` apart.
        capped = 0 < served < size and first.total_count > served
        stride = served if capped or served > size else size
        if stride != size:
            log.info(
                "project %s: the server serves %d rows a page (asked for %d); paging by %d",
                self.target.project_id,
                stride,
                size,
                stride,
            )
        # Offsets below ``end`` are planned; a full page at the end is followed by a
        # look for more (the count may have grown, or be wrong).
        end = _plan_end(first, stride)
        next_offset = stride
        stop_at = math.inf  # an empty page came back here: the plan ends before it
        gaps: list[tuple[int, int]] = []
        pending: set[asyncio.Task[Page]] = set()
        try:
            while True:
                while len(pending) < self.client.window:
                    if gaps:
                        offset, limit = gaps.pop()
                    elif next_offset < min(end, stop_at):
                        offset, limit = next_offset, size
                        next_offset += stride
                    else:
                        break
                    if offset > self.max_jobs:
                        raise self.refused(offset, f"still more rows past {self.max_jobs} jobs")
                    # Twice the pages the largest count implies is more than any drift
                    # explains: a server that ignores offset with its ties shuffled
                    # (no page repeats page 0) would otherwise be paged for ever.
                    most = 2 * (self.most_counted // stride + 1) + self.client.window
                    if len(self.pages) + len(pending) >= most:
                        raise self.refused(
                            offset,
                            f"still full pages after {len(self.pages)} pages for a count of "
                            f"{self.most_counted}: the server ignores offset, or its count",
                        )
                    pending.add(asyncio.ensure_future(self.fetch(offset, limit)))
                if not pending:
                    # In the list's order: the snapshot is merged in it, and rows
                    # inserted in create_time order store and read best.
                    return sorted(self.pages, key=_OFFSET)
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # Every failure is read (else asyncio reports it as never retrieved);
                # the first one fails the pass.
                errors = [error for task in done if (error := task.exception()) is not None]
                if errors:
                    raise errors[0]
                for task in done:
                    page = task.result()
                    self.accept(page)
                    served = len(page.jobs)
                    if served > stride:
                        # The server serves more than its first answer did: page by that.
                        stride = served
                        next_offset = max(next_offset, page.offset + served)
                    end = max(end, _plan_end(page, stride))
                    if served == 0:
                        stop_at = min(stop_at, page.offset)
                    elif served < min(page.limit, stride):
                        if page.offset + served < page.total_count:
                            # A short page in the middle: the rows after it are asked again.
                            gaps.append((page.offset + served, stride - served))
                    elif page.offset + served >= end and self.brought_new_jobs(page):
                        # A full page at the end, and it brought jobs this pass had not
                        # seen: look for more.
                        end = page.offset + served + 1
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def accept(self, page: Page) -> None:
        """Keep ``page``, refusing what no sane server answers."""
        if page.total_count > self.max_jobs:
            raise self.refused(
                page.offset,
                f"total_count {page.total_count} is more than max_jobs_per_project "
                f"({self.max_jobs}): refusing to list it",
                page.request_id,
            )
        self.most_counted = max(self.most_counted, page.total_count)
        if self.first_ids is None:
            self.first_ids = frozenset(_string_ids(page.jobs) or [])
        elif page.offset > 0 and page.jobs and job_id_of(page.jobs[0]) in self.first_ids:
            # Its first job is one of offset 0's (rare, so the whole page is compared
            # only then): the same jobs as offset 0, in any order (ties may come back
            # shuffled)?
            ids = _string_ids(page.jobs) or []
            if ids and frozenset(ids) == self.first_ids:
                self.repeats_of_first += 1
                needed = math.ceil(_REPEATED_ROWS_TO_IGNORE_OFFSET / len(ids))
                if self.repeats_of_first >= needed:
                    raise self.refused(
                        page.offset,
                        f"the server ignores offset: this page repeats the {len(ids)} jobs "
                        "of offset 0",
                        page.request_id,
                    )
        self.pages.append(page)

    def brought_new_jobs(self, page: Page) -> bool:
        """Whether ``page`` holds a job no other page of this pass did (asked only of a
        full page at the end, once or twice a pass)."""
        others = {
            job_id
            for other in self.pages
            if other is not page
            for job_id in map(job_id_of, other.jobs)
            if job_id is not None
        }
        return any(job_id not in others for job_id in map(job_id_of, page.jobs) if job_id)

    def refused(self, offset: int, message: str, request_id: str | None = None) -> Exception:
        described = "&".join(f"{k}={v}" for k, v in sorted(self.filters.items())) or None
        where = Where(self.target.project_id, offset, None, described)
        return DrsProtocolError(where, message, request_id=request_id)


def _plan_end(page: Page, stride: int) -> int:
    """The offset the pages a count implies end before: every page of ``total_count``
    and, when the count fills its last page exactly, the look for more after it
    (asked for with the others, it costs no round trip of its own)."""
    return (page.total_count // stride + 1) * stride


# -- narrowing --------------------------------------------------------------------------


async def _narrow(client: DrsClient, target: ProjectTarget, listing: Listing) -> None:
    """Split a listing that passes could not complete by the API's own filters."""
    log.info(
        "project %s: %s; narrowing the listing by %s",
        target.project_id,
        listing.incomplete_reason,
        ", ".join(LIST_FILTERS),
    )
    # Narrowing may cost a few times a pass, never more: each narrowed listing is at
    # least one request, and a server that ignores the filters would make every one
    # of them the whole project again.
    budget = _Budget(client, target.project_id, 4 * _requests_per_pass(listing) + 32)
    try:
        await _narrow_level(client, target, listing, {}, 0, budget)
    except (DrsError, _StopNarrowing) as exc:
        # What the narrowed listings saw still lands; the listing stays incomplete.
        listing.incomplete_reason = f"{_shortfall(listing)}; narrowing stopped: {exc}"
        listing.complete = False
        return
    # Then the whole listing once more: the narrowed listings count for the counts
    # taken before them, and this pass adds a count taken after them, and what it sees.
    await list_again(client, target, listing, 1)


class _StopNarrowing(Exception):
    pass


class _Budget:
    """The requests narrowing may send for one project."""

    def __init__(self, client: DrsClient, project_id: str, requests: int) -> None:
        self.client = client
        self.project_id = project_id
        self.until = client.requests_by_project[project_id] + requests
        self.requests = requests

    def check(self) -> None:
        if self.client.requests_by_project[self.project_id] >= self.until:
            raise _StopNarrowing(f"its budget of {self.requests} requests is spent")


async def _narrow_level(
    client: DrsClient,
    target: ProjectTarget,
    listing: Listing,
    parent: dict[str, str],
    depth: int,
    budget: _Budget,
) -> None:
    for level in range(depth, len(LIST_FILTERS)):
        name = LIST_FILTERS[level]
        values = _values_seen(listing.pages, name, parent)
        # One value splits nothing: the same listing again. Try the next filter.
        if len(values) < 2:
            continue
        results = await _all_or_cancel(
            _complete_sublisting(client, target, listing, {**parent, name: value}, budget)
            for value in values
        )
        if level + 1 < len(LIST_FILTERS):
            for value, complete in zip(values, results, strict=True):
                if not complete:
                    await _narrow_level(
                        client, target, listing, {**parent, name: value}, level + 1, budget
                    )
        return


async def _complete_sublisting(
    client: DrsClient,
    target: ProjectTarget,
    listing: Listing,
    filters: dict[str, str],
    budget: _Budget,
) -> bool:
    """Passes over one narrowed listing until its ids cover its count."""
    tally = Tally()
    for _ in range(client.paging.max_listing_attempts):
        budget.check()
        listing.narrowed += 1
        pages = await list_pass(client, target, filters)
        listing.add(pages, counted=False)
        ignored = _ignored_filter(pages, filters)
        if ignored is not None:
            raise _StopNarrowing(f"the server ignores the {ignored} filter")
        tally.add_pass(pages)
        if tally.covered() is not None:
            return True
    return False


def _ignored_filter(pages: list[Page], filters: Mapping[str, str]) -> str | None:
    """The filter a narrowed listing's answers do not honour, if any."""
    for page in pages:
        for record in page.jobs:
            if isinstance(record, dict):
                for name, value in filters.items():
                    if record.get(name) != value:
                        return name
    return None


def _requests_per_pass(listing: Listing) -> int:
    return max(1, round(len(listing.pages) / max(1, listing.passes)))


async def _all_or_cancel(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather``, except that the first failure cancels the others: a
    listing that failed must not keep sending requests."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _values_seen(pages: list[Page], name: str, parent: Mapping[str, str]) -> list[str]:
    """The values of field ``name`` among the records seen that match ``parent``."""
    values: set[str] = set()
    for page in pages:
        for record in page.jobs:
            if not isinstance(record, dict):
                continue
            value = record.get(name)
            if isinstance(value, str) and value and _matches(record, parent):
                values.add(value)
    return sorted(values)


def _matches(record: dict[str, Any], filters: Mapping[str, str]) -> bool:
    return all(record.get(name) == value for name, value in filters.items())


def _shortfall(listing: Listing) -> str:
    tally = listing.tally
    seen = tally.jobs
    text = f"{seen} distinct jobs seen in {listing.passes} passes" + (
        f" and {listing.narrowed} narrowed listings" if listing.narrowed else ""
    )
    if tally.counts and (listed := tally.listed_at(tally.counts[-1])) != seen:
        text += f", {listed} of them known to be listed when the last pass began"
    return text + f", for total_count {listing.total_count}"


_JOB_ID = operator.itemgetter("async_job_id")
_OFFSET = operator.attrgetter("offset")


def job_id_of(record: Any) -> str | None:
    """A record's ``async_job_id``, or None for a record without a string one."""
    job_id = record.get("async_job_id") if isinstance(record, dict) else None
    return job_id if isinstance(job_id, str) else None


def _string_ids(records: list[Any]) -> list[str] | None:
    """Each record's ``async_job_id`` if every record is an object with a string id."""
    try:
        # KeyError for a record without an id, TypeError for one that is no object.
        ids = list(map(_JOB_ID, records))
    except (KeyError, TypeError):
        return None
    return ids if all(map(isinstance, ids, itertools.repeat(str))) else None


def _seen(pages: list[Page], epoch: int) -> _Seen:
    """A pass's records as the tally weighs them."""
    ids: set[str] = set()
    record_ids: list[str | None] = []
    # Where the pages with extra rows start, and those rows (nearly always none).
    extras: list[tuple[int, np.ndarray]] = []
    for page in pages:
        start = len(record_ids)
        page_ids = _string_ids(page.jobs)
        if page_ids is not None:
            # Every record an object with a string id, as nearly always: set operations
            # in C rather than a Python loop per record.
            in_page = set(page_ids)
            record_ids += page_ids
            if len(in_page) != len(page_ids):
                extras.append((start, _extra_rows(page_ids)))
        else:
            listed = list(map(job_id_of, page.jobs))
            in_page = {job_id for job_id in listed if job_id is not None}
            record_ids += listed
            extras.append((start, _extra_rows(listed)))
        ids |= in_page
    extra = np.zeros(len(record_ids), dtype=bool)
    for start, rows in extras:
        extra[start : start + len(rows)] = rows
    created = [_create_seconds(page.jobs) for page in pages]
    return _Seen(
        epoch,
        ids,
        record_ids,
        np.concatenate(created) if created else np.zeros(0, dtype=np.int64),
        extra,
        len(pages[0].jobs) if pages else 0,
    )


def _extra_rows(listed: Sequence[str | None]) -> np.ndarray:
    """Rows of a page that count as jobs beyond their id's first row: a record
    without a usable id cannot be told apart from any other, and an id twice
    within one page is two rows of the API's count (a page is one answer: drift
    cannot repeat a row inside it)."""
    rows = np.zeros(len(listed), dtype=bool)
    seen: set[str] = set()
    for row, job_id in enumerate(listed):
        if job_id is None or job_id in seen:
            rows[row] = True
        else:
            seen.add(job_id)
    return rows


# -- when a job was created -------------------------------------------------------------

# A create_time that cannot be read (bad input, which normalization rejects) is taken as
# older than any count: such a record would otherwise cost every sync a second pass.
UNREAD = np.iinfo(np.int64).min
_CREATE_TIME = operator.itemgetter("create_time")
# "2022-11-07T06:41:08Z", the documented shape: 20 ASCII characters.
_ISO_Z_LENGTH = 20
_ISO_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_ISO_SEPARATORS = np.array([4, 7, 10, 13, 16, 19])
_ISO_SEPARATOR_BYTES = np.frombuffer(b"--T::Z", dtype=np.uint8)
# Epoch milliseconds, as other v5 endpoints give them (docs/drs-api.md).
_MAX_EPOCH_MS_DIGITS = 16


def _second(date: datetime | None) -> int | None:
    return None if date is None else math.floor(date.timestamp())


def _create_seconds(records: list[Any]) -> np.ndarray:
    """Each record's create_time in epoch seconds, as normalization reads it (ISO-8601
    with an offset, epoch milliseconds; the documented ``...SSZ`` and epoch
    milliseconds in C, any other ISO-8601 form record by record); UNREAD otherwise."""
    try:
        times: list[Any] = list(map(_CREATE_TIME, records))
    except (KeyError, TypeError):
        times = [r.get("create_time") if isinstance(r, dict) else None for r in records]
    try:
        lengths = np.fromiter(map(len, times), dtype=np.int64, count=len(times))
    except TypeError:
        times = [t if isinstance(t, str) else "" for t in times]
        lengths = np.fromiter(map(len, times), dtype=np.int64, count=len(times))
    out = np.full(len(times), UNREAD, dtype=np.int64)
    shapes = (
        (lengths == _ISO_Z_LENGTH, _iso_z_seconds),
        ((lengths >= 1) & (lengths <= _MAX_EPOCH_MS_DIGITS), _epoch_ms_seconds),
    )
    for shaped, read in shapes:
        if not shaped.any():
            continue
        group = times if shaped.all() else list(itertools.compress(times, shaped))
        seconds = read(group)
        if seconds is None:
            # One of them is not of the shape after all: each is read on its own.
            seconds = np.array([_read_one(read, text) for text in group], dtype=np.int64)
        out[shaped] = seconds
    for row in np.flatnonzero(out == UNREAD):
        if isinstance(times[row], str) and times[row]:
            out[row] = _iso_8601_second(times[row])
    return out


def _iso_8601_second(text: str) -> int:
    """ISO-8601 in another form (a fraction, an offset such as +08:00), as the careful
    normalization accepts it; UNREAD if not ISO-8601, or without an offset."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return UNREAD
    return UNREAD if parsed.tzinfo is None else math.floor(parsed.timestamp())


def _read_one(read: Callable[[list[str]], np.ndarray | None], text: str) -> int:
    seconds = read([text])
    return UNREAD if seconds is None else int(seconds[0])


def _ascii(texts: list[str]) -> np.ndarray | None:
    try:
        return np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
    except (TypeError, UnicodeEncodeError):  # TypeError: one with a length, but no string
        return None


def _iso_z_seconds(texts: list[str]) -> np.ndarray | None:
    raw = _ascii(texts)
    if raw is None:
        return None
    chars = raw.reshape(len(texts), _ISO_Z_LENGTH)
    if not (chars[:, _ISO_SEPARATORS] == _ISO_SEPARATOR_BYTES).all():
        return None
    # Subtracting in uint8 wraps anything below "0" round to >= 246.
    if ((chars[:, _ISO_DIGITS] - np.uint8(ord("0"))) > 9).any():
        return None
    naive = np.ascontiguousarray(chars[:, : _ISO_Z_LENGTH - 1]).view(f"S{_ISO_Z_LENGTH - 1}")
    try:
        # ValueError for a time that does not exist (30 February, hour 24).
        seconds: np.ndarray = naive.ravel().astype("datetime64[s]").astype(np.int64)
    except ValueError:
        return None
    return seconds


def _epoch_ms_seconds(texts: list[str]) -> np.ndarray | None:
    raw = _ascii(texts)
    # ASCII digits only: int() would also take "+1", " 1" or other scripts' digits.
    if raw is None or ((raw < ord("0")) | (raw > ord("9"))).any():
        return None
    seconds: np.ndarray = np.array(texts, dtype=np.int64) // 1000
    return seconds
