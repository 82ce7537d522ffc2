"""The world: every project's jobs at any time ``t``.

Two kinds of jobs live side by side:

* the stream: job ``i`` of a project is a pure function of (settings, project, i)
  (see stream.py), so the world at time t is a pure function of (settings, t) and
  separate processes built from the same settings list the same jobs at the same
  wall time. Create times increase with ``i``, so the jobs visible at t are an
  index range: listing costs O(visible jobs), never O(jobs since the anchor).
* scripted jobs: added and changed by tests (or by the drift fault) at run time.

A stream job that a script changes is pinned (kept as the changed object) so
that regenerating it does not undo the change.

Cost model: per project a sliding window keeps only the create times of the
indices that can be visible (8 bytes each); full SimJobs are generated for the
rows actually served or filtered, and kept in a bounded LRU cache.

Order and ties: a listing is ordered by (create_time, id), ascending or reversed.
Jobs that share a create_time (``WorldSettings.tie_share``, or scripted jobs
added at one time) are thus ordered by id. ``page(..., shuffle_ties=rng)`` plays
a server without a tie-breaker instead: the jobs whose create_time falls in the
same second (what the ISO form shows, so scripted jobs a fraction apart tie too)
come back in a fresh random order on every call. Either way only the tie groups
that touch the requested window are looked at (those straddling its edges in
full): a page never sorts the whole listing.
"""

from __future__ import annotations

import bisect
import gc
import math
import random
import threading
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from drs_pipeline.drs import statuses
from drs_pipeline.simulator.clock import Clock, SkewedClock, WallClock
from drs_pipeline.simulator.model import SimJob, SimProject, TimeFormat, WorldSettings
from drs_pipeline.simulator.stream import ProjectStream

__all__ = ["MAX_AUTO_JOB_CACHE", "SimJob", "SimProject", "SortDir", "World", "WorldSettings"]

SortDir = Literal["asc", "desc"]
_T = TypeVar("_T")
# Generated jobs cost time to make and memory to keep (docs/performance.md). By
# default the cache holds every job that can be visible at once (plus slack for
# scripted churn), so a world that is paged end to end is served from memory once
# warm; capped because a world of many millions of visible jobs would not fit.
MAX_AUTO_JOB_CACHE = 2_000_000


def _sort_key(job: SimJob) -> tuple[float, str]:
    # Ties on create_time are broken by id so that every listing orders them alike.
    return (job.create_time, job.async_job_id)


class _Window:
    """Create times of one project's stream for a contiguous index range.

    Requests arrive with a slightly later ``t`` each time, so the window slides:
    new indices are appended, expired ones dropped at the front, the rest reused.
    ``creates`` is sorted (create times increase with the index), so the visible
    part is found by bisection. Early vanishers are listed apart, sorted by index.
    """

    __slots__ = ("creates", "early_at", "early_idx", "lo")

    def __init__(self, lo: int) -> None:
        self.lo = lo
        self.creates = array("d")
        self.early_idx: list[int] = []
        self.early_at: list[float] = []

    @property
    def hi(self) -> int:
        return self.lo + len(self.creates)


class World:
    """All projects' jobs. Thread-safe: the server's event loop lists while a test
    thread scripts changes."""

    def __init__(
        self,
        settings: WorldSettings | None = None,
        clock: Clock | None = None,
        *,
        job_cache: int | None = None,
    ) -> None:
        """``job_cache``: how many generated jobs to keep (LRU); None sizes it to the
        jobs visible at once across all projects, up to MAX_AUTO_JOB_CACHE."""
        self.settings = settings if settings is not None else WorldSettings()
        base = clock if clock is not None else WallClock()
        # The server's clock: every "now" of the world, and of the app serving it.
        skew = self.settings.clock_skew_s
        self.clock: Clock = SkewedClock(base, skew) if skew else base
        # Switch off to have a world of scripted jobs only.
        self.stream_enabled = self.settings.streaming
        self._lock = threading.RLock()
        self._projects = {p.project_id: p for p in self.settings.projects}
        self._streams = {pid: ProjectStream(self.settings, pid) for pid in self._projects}
        self._windows: dict[str, _Window] = {}
        self._scripted: dict[str, dict[str, SimJob]] = {pid: {} for pid in self._projects}
        self._pinned: dict[str, dict[int, SimJob]] = {pid: {} for pid in self._projects}
        self._cache: OrderedDict[tuple[str, int], SimJob] = OrderedDict()
        self._cache_size = job_cache if job_cache is not None else self._auto_cache_size()
        # Bumped by every scripted change: with the time, it keys what a listing shows
        # (the app's page cache relies on it).
        self.version = 0

    def _auto_cache_size(self) -> int:
        settings = self.settings
        per_project = settings.retention_s / settings.arrival_interval_s + 2
        return min(MAX_AUTO_JOB_CACHE, int(1.1 * per_project * len(settings.projects)) + 10_000)

    # -- projects -----------------------------------------------------------------

    @property
    def projects(self) -> tuple[SimProject, ...]:
        return self.settings.projects

    def has_project(self, project_id: str) -> bool:
        return project_id in self._projects

    def now(self) -> float:
        return self.clock.now()

    # -- listing ------------------------------------------------------------------

    def list_jobs(
        self,
        project_id: str,
        t: float,
        *,
        sort_dir: SortDir = "desc",
        status: str | None = None,
        domain_name: str | None = None,
        user_name: str | None = None,
        async_job_id: str | None = None,
    ) -> list[SimJob]:
        """Jobs of ``project_id`` visible at ``t``, sorted by (create_time, id) in
        ``sort_dir``, filtered on their status and owner at ``t``. A new list."""
        return self.page(
            project_id,
            t,
            sort_dir=sort_dir,
            status=status,
            domain_name=domain_name,
            user_name=user_name,
            async_job_id=async_job_id,
        )[1]

    def page(
        self,
        project_id: str,
        t: float,
        *,
        offset: int = 0,
        limit: int | None = None,
        sort_dir: SortDir = "desc",
        status: str | None = None,
        domain_name: str | None = None,
        user_name: str | None = None,
        async_job_id: str | None = None,
        shuffle_ties: random.Random | None = None,
    ) -> tuple[int, list[SimJob]]:
        """(total matching, the ``limit`` jobs from ``offset``) of the same listing as
        ``list_jobs``, generating full jobs only for the page when unfiltered.

        ``shuffle_ties``: when given, jobs created in the same second come back in an
        order drawn from it, fresh on every call, instead of by id (see the module
        docstring): offset paging over such a group can skip some and repeat others."""
        if sort_dir not in ("asc", "desc"):
            raise ValueError(f"sort_dir must be 'asc' or 'desc', not {sort_dir!r}")
        with self._lock:
            self._check_project(project_id)
            stream: Sequence[int] = (
                self._visible_indices(project_id, t) if self.stream_enabled else range(0)
            )
            scripted = sorted(
                (j for j in self._scripted[project_id].values() if j.visible_at(t)), key=_sort_key
            )
            if async_job_id is not None:
                jobs = self._by_id(project_id, async_job_id, stream, scripted)
            elif status is None and domain_name is None and user_name is None:
                order = self._merge(project_id, stream, scripted)
                # Stream jobs that share a create time are listed by index: they need
                # ordering by id, scripted ties are already placed by (time, id).
                ties = _Ties.of(shuffle_ties, by_id=bool(self.settings.tie_share))
                page = _page_of(
                    order,
                    offset,
                    limit,
                    sort_dir,
                    lambda item: self._resolve(project_id, item),
                    ties,
                    self._create_time_of(project_id),
                )
                return len(order), page
            else:
                jobs = [self._job(project_id, i) for i in stream]
                if scripted or self.settings.tie_share:
                    jobs = sorted(jobs + scripted, key=_sort_key)
        if domain_name is not None:
            jobs = [j for j in jobs if j.domain_name == domain_name]
        if user_name is not None:
            jobs = [j for j in jobs if j.user_name == user_name]
        if status is not None:
            jobs = [j for j in jobs if j.status_at(t) == status]
        # Sorted by (time, id) already: only a shuffle has anything left to do.
        ties = _Ties.of(shuffle_ties, by_id=False)
        return len(jobs), _page_of(jobs, offset, limit, sort_dir, _same, ties, _job_time)

    def warm(self, t: float | None = None) -> int:
        """Generate every job visible at ``t`` (default now) in every project, so that
        a benchmark measures serving rather than first-time generation. Returns how
        many stream jobs are visible. Only useful if they fit in the job cache."""
        t = self.clock.now() if t is None else t
        count = 0
        # A bulk allocation of objects without reference cycles: pausing the cyclic
        # collector, which would rescan the growing cache again and again, saves ~25 %.
        paused = gc.isenabled()
        gc.disable()
        try:
            with self._lock:
                if not self.stream_enabled:
                    return 0
                for project_id in self._projects:
                    indices = self._visible_indices(project_id, t)
                    for index in indices:
                        self._job(project_id, index)
                    count += len(indices)
        finally:
            if paused:
                gc.enable()
        return count

    def stream_job(self, project_id: str, index: int) -> SimJob:
        """Job ``index`` of the project's stream, whether visible or not (the pinned
        version if a script changed it)."""
        with self._lock:
            self._check_project(project_id)
            return self._job(project_id, index)

    def get_job(self, project_id: str, async_job_id: str) -> SimJob:
        """A scripted job, or a stream job created by now. KeyError if unknown."""
        with self._lock:
            return self._find(project_id, async_job_id)

    # -- scripting ----------------------------------------------------------------

    def add_job(
        self,
        project_id: str,
        *,
        async_job_id: str | None = None,
        status: str = statuses.VALIDATING,
        domain_name: str | None = None,
        user_name: str | None = None,
        create_time: float | None = None,
        time_format: TimeFormat = "iso",
        raw: dict[str, Any] | None = None,
        vanish_at: float | None = None,
    ) -> SimJob:
        """Add a job beside the stream. Defaults: a fresh uuid4 id, created now, owned
        by the first user of the project's account, listed until vanished."""
        with self._lock:
            self._check_project(project_id)
            job_id = async_job_id if async_job_id is not None else str(uuid.uuid4())
            if job_id in self._scripted[project_id]:
                raise ValueError(f"job {job_id} already exists in project {project_id}")
            first_domain, first_users = self.settings.domain_of(project_id)
            created = create_time if create_time is not None else self.clock.now()
            job = SimJob(
                project_id=project_id,
                async_job_id=job_id,
                domain_name=domain_name if domain_name is not None else first_domain,
                user_name=user_name if user_name is not None else first_users[0],
                create_time=created,
                timeline=[(created, status)],
                vanish_at=vanish_at,
                time_format=time_format,
                raw=raw,
            )
            self._scripted[project_id][job_id] = job
            self.version += 1
            return job

    def set_status(self, project_id: str, async_job_id: str, status: str) -> SimJob:
        """From now on the job shows ``status``. Later steps of a stream job's own
        lifecycle are dropped: the script overrides the job's future."""
        with self._lock:
            job = self._find(project_id, async_job_id)
            now = self.clock.now()
            keep = bisect.bisect_right(job.timeline, now, key=lambda entry: entry[0])
            # Keep at least the creation entry, even when "now" is before it.
            del job.timeline[max(keep, 1) :]
            job.timeline.append((max(now, job.timeline[-1][0]), status))
            self._pin(job)
            return job

    def set_owner(
        self,
        project_id: str,
        async_job_id: str,
        domain_name: str | None = None,
        user_name: str | None = None,
    ) -> SimJob:
        with self._lock:
            job = self._find(project_id, async_job_id)
            if domain_name is not None:
                job.domain_name = domain_name
            if user_name is not None:
                job.user_name = user_name
            self._pin(job)
            return job

    def vanish(self, project_id: str, async_job_id: str) -> SimJob:
        """The job leaves the list now (the API has no DELETE, but jobs still go)."""
        with self._lock:
            job = self._find(project_id, async_job_id)
            job.vanish_at = self.clock.now()
            self._pin(job)
            return job

    def restore(self, project_id: str, async_job_id: str) -> SimJob:
        """Undo ``vanish``: a scripted job stays for good, a stream job until its
        natural expiry."""
        with self._lock:
            job = self._find(project_id, async_job_id)
            job.vanish_at = (
                None if job.index is None else job.create_time + self.settings.wall_retention_s
            )
            self._pin(job)
            return job

    # -- jobs by index ------------------------------------------------------------

    def _check_project(self, project_id: str) -> None:
        if project_id not in self._projects:
            raise KeyError(f"unknown project {project_id}")

    def _job(self, project_id: str, index: int) -> SimJob:
        pinned = self._pinned[project_id].get(index)
        if pinned is not None:
            return pinned
        key = (project_id, index)
        cache = self._cache
        job = cache.get(key)
        if job is not None:
            cache.move_to_end(key)
            return job
        job = self._streams[project_id].job(index)
        cache[key] = job
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return job

    def _resolve(self, project_id: str, item: int | SimJob) -> SimJob:
        return self._job(project_id, item) if isinstance(item, int) else item

    def _create_time_of(self, project_id: str) -> Callable[[int | SimJob], float]:
        """An item's create time without generating the job: a stream index reads the
        window (which holds every visible index), a scripted job its own field."""
        window = self._windows.get(project_id)

        def create_time(item: int | SimJob) -> float:
            if isinstance(item, int):
                assert window is not None
                return window.creates[item - window.lo]
            return item.create_time

        return create_time

    def _find(self, project_id: str, async_job_id: str) -> SimJob:
        self._check_project(project_id)
        job = self._scripted[project_id].get(async_job_id)
        if job is not None:
            return job
        if self.stream_enabled:
            index = self._streams[project_id].index_of(async_job_id)
            if index is not None:
                job = self._job(project_id, index)
                if job.async_job_id == async_job_id and job.create_time <= self.clock.now():
                    return job
        raise KeyError(f"no job {async_job_id} in project {project_id}")

    def _pin(self, job: SimJob) -> None:
        # Every scripted change of an existing job ends here.
        self.version += 1
        if job.index is not None:
            self._pinned[job.project_id][job.index] = job

    # -- visibility ---------------------------------------------------------------

    def _window(self, project_id: str, t: float) -> _Window:
        """The project's window, slid to cover every index that can be visible at t."""
        stream = self._streams[project_id]
        lo, hi = stream.index_range(t)
        window = self._windows.get(project_id)
        if window is None or lo < window.lo or lo >= window.hi:
            # First use, the clock went back (ManualClock), or a jump past the window.
            window = _Window(lo)
            self._windows[project_id] = window
        elif lo > window.lo:
            del window.creates[: lo - window.lo]
            cut = bisect.bisect_left(window.early_idx, lo)
            del window.early_idx[:cut], window.early_at[:cut]
            window.lo = lo
        previous = window.creates[-1] if window.creates else None
        for index in range(window.hi, hi):
            create_time, early_vanish = stream.skeleton(index, previous)
            previous = create_time
            window.creates.append(create_time)
            if early_vanish is not None:
                window.early_idx.append(index)
                window.early_at.append(early_vanish)
        return window

    def _visible_indices(self, project_id: str, t: float) -> Sequence[int]:
        """Stream indices visible at ``t``, ascending: a range unless some vanished."""
        window = self._window(project_id, t)
        retention = self.settings.wall_retention_s
        # create_time <= t < create_time + retention: the same float expressions
        # SimJob.visible_at evaluates, so the two never disagree at the edges.
        start = bisect.bisect_right(window.creates, t, key=lambda c: c + retention)
        stop = bisect.bisect_right(window.creates, t)
        first, end = window.lo + start, window.lo + max(start, stop)
        gone: set[int] = set()
        a = bisect.bisect_left(window.early_idx, first)
        b = bisect.bisect_left(window.early_idx, end)
        for k in range(a, b):
            if window.early_at[k] <= t:
                gone.add(window.early_idx[k])
        # Scripted changes win over the stream: a vanished or restored pinned job.
        for index, job in self._pinned[project_id].items():
            if first <= index < end:
                if job.visible_at(t):
                    gone.discard(index)
                else:
                    gone.add(index)
        if not gone:
            return range(first, end)
        return [i for i in range(first, end) if i not in gone]

    def _merge(
        self, project_id: str, stream: Sequence[int], scripted: list[SimJob]
    ) -> Sequence[int | SimJob]:
        """Stream indices and scripted jobs in one ascending order."""
        if not scripted:
            return stream
        merged: list[int | SimJob] = list(stream)
        # Scripted jobs are few: inserting them beats a full sort (and generates only the
        # handful of stream jobs the bisection compares against).
        for job in scripted:
            bisect.insort(merged, job, key=lambda item: _sort_key(self._resolve(project_id, item)))
        return merged

    def _by_id(
        self, project_id: str, async_job_id: str, stream: Sequence[int], scripted: list[SimJob]
    ) -> list[SimJob]:
        found = [j for j in scripted if j.async_job_id == async_job_id]
        index = self._streams[project_id].index_of(async_job_id)
        if index is not None and _contains(stream, index):
            job = self._job(project_id, index)
            if job.async_job_id == async_job_id:
                found.append(job)
        return sorted(found, key=_sort_key)


def _contains(indices: Sequence[int], index: int) -> bool:
    if isinstance(indices, range):
        return index in indices
    pos = bisect.bisect_left(indices, index)
    return pos < len(indices) and indices[pos] == index


class _Ties:
    """How a page reorders the jobs that tie: by id (deterministic) or shuffled."""

    __slots__ = ("key", "rng")

    def __init__(self, rng: random.Random | None) -> None:
        self.rng = rng
        # A shuffle plays a server that sees seconds; ids break exact ties only.
        self.key: Callable[[float], float] = _second if rng is not None else _same

    @classmethod
    def of(cls, rng: random.Random | None, *, by_id: bool) -> _Ties | None:
        """None when there is nothing to do: no shuffle, and no ties by id to order."""
        return cls(rng) if rng is not None or by_id else None

    def reorder(self, jobs: list[SimJob]) -> None:
        """Reorder each run of tied jobs of ``jobs`` (ascending) in place."""
        key, rng = self.key, self.rng
        start, n = 0, len(jobs)
        while start < n:
            at = key(jobs[start].create_time)
            end = start + 1
            while end < n and key(jobs[end].create_time) == at:
                end += 1
            if end - start > 1:
                group = jobs[start:end]
                if rng is not None:
                    rng.shuffle(group)
                else:
                    group.sort(key=_job_id)
                jobs[start:end] = group
            start = end


def _second(create_time: float) -> float:
    return float(math.floor(create_time))


def _same(x: _T) -> _T:
    return x


def _job_id(job: SimJob) -> str:
    return job.async_job_id


def _job_time(job: SimJob) -> float:
    return job.create_time


def _page_of(
    items: Sequence[_T],
    offset: int,
    limit: int | None,
    sort_dir: SortDir,
    resolve: Callable[[_T], SimJob],
    ties: _Ties | None = None,
    create_time: Callable[[_T], float] | None = None,
) -> list[SimJob]:
    """Rows ``offset .. offset+limit`` of ``items`` (ascending) read in ``sort_dir``,
    without reversing the whole listing.

    With ``ties``, the window is first widened to whole tie groups at its two edges
    (found by ``create_time``, which must not need the full job), the groups in it
    reordered, and the window cut back out: the cost is the page plus the two edge
    groups, never the listing."""
    n = len(items)
    size = n if limit is None else limit
    if sort_dir == "asc":
        start, stop = offset, min(n, offset + size)
    else:
        stop = n - offset
        start = max(0, stop - size)
    if start >= stop:
        return []
    if ties is None or create_time is None:
        rows = [resolve(item) for item in items[start:stop]]
    else:
        key = ties.key
        lo, first = start, key(create_time(items[start]))
        while lo > 0 and key(create_time(items[lo - 1])) == first:
            lo -= 1
        hi, last = stop, key(create_time(items[stop - 1]))
        while hi < n and key(create_time(items[hi])) == last:
            hi += 1
        segment = [resolve(item) for item in items[lo:hi]]
        ties.reorder(segment)
        rows = segment[start - lo : stop - lo]
    if sort_dir == "desc":
        rows.reverse()
    return rows
