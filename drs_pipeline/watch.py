"""The watch: jobs in transient statuses observed often, for a handful of requests.

A sync lists every job of every project, so its observations are minutes apart.
Jobs in a transient status (validating) are few, and the API filters by status:
one round of the watch lists, per configured project, only the jobs in each
watched status (``watch.statuses``), then asks by id for the jobs the history
holds present in a watched status that these listings lacked (most have just
moved on). Every record the answers hold is an observation, merged into the
history by the sync's own merge (``warehouse.merge.apply_syncs``), so the
merge's rules hold as for a sync: an interval closes only when a newer
observation shows another status, an older one is ignored.

What a round never does (docs/watch.md): mark a job gone (a job not found by id
is only not found: proving absence is the sync's, ``drs.absence``), write
``drs.sync_runs`` rows (it is not a sync), rebuild the marts or publish the
readers' copy (the next sync does both).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from drs_pipeline.config import ProjectSettings, Settings
from drs_pipeline.drs.absence import JOB_DOES_NOT_EXIST
from drs_pipeline.drs.client import DrsClient, Page, PagingPolicy, ProjectTarget, utc_now
from drs_pipeline.drs.errors import DrsApiError, DrsError
from drs_pipeline.drs.listing import job_id_of, list_pass
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.drs.targets import build_targets
from drs_pipeline.warehouse import merge
from drs_pipeline.warehouse.merge import ProjectSync, SyncRunRow
from drs_pipeline.warehouse.normalize import Normalized, normalize_pages
from drs_pipeline.warehouse.queries import QUERIES
from drs_pipeline.warehouse.store import Warehouse, connect
from drs_pipeline.warehouse.target import claim_target

log = logging.getLogger(__name__)

OK, INCOMPLETE, FAILED = "ok", "incomplete", "failed"


@dataclass(frozen=True)
class ProjectWatch:
    """What one round of the watch saw of one project, and what it changed."""

    project_id: str
    region: str
    # ok; incomplete (a look-up by id failed, or more were missing than
    # max_absence_checks allows: what was seen still landed); failed (a listing
    # failed: nothing of the project was written).
    outcome: str
    # Distinct jobs the history holds that were observed (listed or found by id),
    # and merged.
    jobs_observed: int = 0
    changed_jobs: int = 0
    # Jobs listed that the history does not hold yet: left to the next sync.
    new_jobs_left: int = 0
    # Jobs asked for by id, and of those, how many were not found.
    looked_up: int = 0
    not_found: int = 0
    requests: int = 0
    rejected_records: int = 0
    error: str | None = None
    # Of the error that failed the project, for reports.
    error_code: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class WatchReport:
    # Names the round's rejected records in drs.rejected_records (there is no
    # drs.sync_runs row for it).
    watch_id: str
    database: Path
    statuses: tuple[str, ...]
    started_at: datetime
    finished_at: datetime
    projects: tuple[ProjectWatch, ...]
    requests: int

    @property
    def jobs_observed(self) -> int:
        return sum(p.jobs_observed for p in self.projects)

    @property
    def changed_jobs(self) -> int:
        return sum(p.changed_jobs for p in self.projects)

    @property
    def new_jobs_left(self) -> int:
        return sum(p.new_jobs_left for p in self.projects)

    @property
    def failed(self) -> tuple[ProjectWatch, ...]:
        return tuple(p for p in self.projects if p.outcome == FAILED)

    @property
    def not_ok(self) -> tuple[ProjectWatch, ...]:
        return tuple(p for p in self.projects if p.outcome != OK)


def new_watch_id(now: datetime) -> str:
    """Sortable, and never mistaken for a sync's id: ``watch-20261128T173855Z-3f9a1c``."""
    return f"watch-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_watch(
    settings: Settings,
    database: Path,
    *,
    clock: Callable[[], datetime] = utc_now,
    lock_timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    paging: PagingPolicy | None = None,
) -> WatchReport:
    """One round of the watch over every configured project, merged into ``database``.

    The database is held only to read the watched jobs and then to merge, not while
    requests are in flight: a sync in another process waits for the file at most
    that long (its observations, newer, then win over the round's).
    """
    with Warehouse(database, lock_timeout_s=lock_timeout_s) as warehouse:
        # Before anything is requested or written: real history and the embedded
        # simulator's never mix (warehouse.target).
        claim_target(warehouse.connection, database, settings)
        watched = watched_jobs(warehouse.connection, settings)

    async def main() -> _Round:
        drs = build_targets(settings, retry=retry, paging=paging, clock=clock)
        async with drs.client:
            return await observe_projects(
                settings, drs.client, watched, targets=drs.projects, clock=clock
            )

    round_ = asyncio.run(main())
    with Warehouse(database, lock_timeout_s=lock_timeout_s) as warehouse:
        landed = _land(
            warehouse.connection, [o for o in round_.observed if isinstance(o, _Observed)]
        )
    results = tuple(
        o if isinstance(o, ProjectWatch) else landed[o.project.project_id] for o in round_.observed
    )
    for result in results:
        log.info(
            "watch: project %s (%s): %s, %d jobs observed, %d looked up by id (%d not found), "
            "%d changed, %d new left to the next sync%s",
            result.project_id,
            result.region,
            result.outcome,
            result.jobs_observed,
            result.looked_up,
            result.not_found,
            result.changed_jobs,
            result.new_jobs_left,
            f": {result.error}" if result.error else "",
        )
    return WatchReport(
        watch_id=round_.watch_id,
        database=database,
        statuses=settings.watch.statuses,
        started_at=round_.started_at,
        finished_at=clock(),
        projects=results,
        requests=round_.requests,
    )


def watched_jobs(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, list[str]]:
    """Per configured project, its jobs present in a watched status, the longest
    unobserved first (so that a bound on look-ups starves none of them)."""
    rows = con.execute(QUERIES["watched_jobs"], _watch_params(settings)).fetchall()
    watched: dict[str, list[str]] = {}
    for project_id, job_id in rows:
        watched.setdefault(str(project_id), []).append(str(job_id))
    return watched


def count_watched_jobs(published: Path, settings: Settings) -> tuple[int, datetime | None]:
    """Jobs of the configured projects present in a watched status in the readers'
    copy at ``published``, and when that copy was published. Read-only: the history
    itself may be held by a sync in another process."""
    with connect(published, read_only=True, lock_timeout_s=5.0) as con:
        row = con.execute(QUERIES["watched_job_count"], _watch_params(settings)).fetchone()
    assert row is not None  # an aggregate always returns its row
    jobs, published_at = row
    return int(jobs), published_at


def _watch_params(settings: Settings) -> dict[str, object]:
    return {
        "statuses": list(settings.watch.statuses),
        "project_ids": [project.project_id for project in settings.projects],
    }


@dataclass(frozen=True)
class _Round:
    """What one round requested, before anything lands."""

    watch_id: str
    started_at: datetime
    # Per configured project, in order: what to merge, or why it failed.
    observed: list[_Observed | ProjectWatch]
    requests: int


async def observe_projects(
    settings: Settings,
    client: DrsClient,
    watched: Mapping[str, Sequence[str]],
    *,
    targets: Mapping[str, ProjectTarget] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> _Round:
    """Every configured project observed concurrently; a project that fails stops
    no other."""
    started_at = clock()
    watch_id = new_watch_id(started_at)

    async def one(project: ProjectSettings) -> _Observed | ProjectWatch:
        target = (targets or {}).get(project.project_id) or ProjectTarget(
            project.project_id, project.endpoint
        )
        try:
            return await _observe(
                watch_id,
                project,
                target,
                client,
                settings.watch.statuses,
                watched.get(project.project_id, ()),
                max_lookups=settings.max_absence_checks,
                clock=clock,
            )
        except DrsError as exc:
            error, code, request_id = str(exc), exc.error_code, exc.request_id
        except Exception as exc:
            # One project's unexpected failure (a bug) must not stop the others.
            log.exception("watch: project %s failed unexpectedly", project.project_id)
            error, code, request_id = f"{type(exc).__name__}: {exc}", None, None
        return ProjectWatch(
            project.project_id,
            project.region,
            FAILED,
            requests=client.requests_by_project[project.project_id],
            error=error,
            error_code=code,
            request_id=request_id,
        )

    observed = await asyncio.gather(*(one(project) for project in settings.projects))
    return _Round(watch_id, started_at, list(observed), client.requests_sent)


@dataclass(frozen=True)
class _Observed:
    """One project's round before it lands: what to merge, and the look-ups' counts."""

    project: ProjectSettings
    # Its run row is never written: it carries the counts through the merge.
    sync: ProjectSync
    looked_up: int
    not_found: int
    # Listed jobs the history does not hold, left out of ``sync`` (``_only_known``).
    new_jobs_left: int = 0


@dataclass(frozen=True)
class _Lookups:
    found: list[Page]
    not_found: int
    # The first look-up that failed, if one did.
    error: str | None


async def _observe(
    watch_id: str,
    project: ProjectSettings,
    target: ProjectTarget,
    client: DrsClient,
    statuses: Sequence[str],
    watched: Sequence[str],
    *,
    max_lookups: int,
    clock: Callable[[], datetime],
) -> _Observed:
    """One listing per watched status, then the look-ups by id."""
    started_at = clock()
    pages = [
        page
        for listed in await _all_settled(
            [list_pass(client, target, {"status": s}) for s in statuses]
        )
        for page in listed
    ]
    ignored = _statuses_not_asked_for(pages)
    if ignored:
        # Still true observations, merged as such; but each round now costs a
        # listing of the whole project, which the watch is meant to avoid.
        log.warning(
            "watch: project %s: the server ignores the status filter (asked for %s, got %s "
            "too): each round lists the whole project",
            project.project_id,
            ", ".join(statuses),
            ", ".join(sorted(ignored)),
        )
    seen = {job_id for page in pages for job_id in map(job_id_of, page.jobs) if job_id}
    missing = [job_id for job_id in watched if job_id not in seen]
    asked = missing[:max_lookups]
    lookups = await _look_up(client, target, asked)
    normalized = normalize_pages(
        [*pages, *lookups.found], project_id=project.project_id, region=project.region
    )
    error = lookups.error
    if error is None and len(missing) > len(asked):
        error = (
            f"{len(missing)} watched jobs were not listed, {len(asked)} asked for by id "
            f"(max_absence_checks {max_lookups}); the next rounds ask for the rest"
        )
    run = SyncRunRow(
        sync_id=watch_id,
        project_id=project.project_id,
        started_at=started_at,
        finished_at=clock(),
        outcome=OK if error is None else INCOMPLETE,
        error=error,
        pages=len(pages) + len(lookups.found),
        jobs_seen=len(normalized.jobs),
        total_count=None,
        requests=client.requests_by_project[project.project_id],
    )
    # Nothing confirmed gone: the watch never marks a job gone.
    sync = ProjectSync(run, normalized, frozenset(), started_at)
    return _Observed(project, sync, len(asked), lookups.not_found)


async def _all_settled(listings: list[Coroutine[Any, Any, list[Page]]]) -> list[list[Page]]:
    """Every listing run to its end, then the first failure raised: none is left
    sending requests for a project already reported failed."""
    results = await asyncio.gather(*listings, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if not isinstance(result, BaseException)]


def _statuses_not_asked_for(pages: Iterable[Page]) -> set[str]:
    """The statuses of records that do not match the status their page asked for."""
    found: set[str] = set()
    for page in pages:
        asked = dict(page.filters).get("status")
        for record in page.jobs:
            status = record.get("status") if isinstance(record, dict) else None
            if asked is not None and isinstance(status, str) and status != asked:
                found.add(status)
    return found


async def _look_up(client: DrsClient, target: ProjectTarget, job_ids: Sequence[str]) -> _Lookups:
    """Each job asked for by id once. Whatever an answer lists is an observation (a
    server ignoring the id filter lists other jobs: they are real too); an answer
    without the job, or 400 DRS.10000010, means only that it was not found."""

    async def ask(job_id: str) -> Page | None:
        try:
            return await client.fetch_page(target, offset=0, limit=1, async_job_id=job_id)
        except DrsApiError as exc:
            if exc.status_code == 400 and exc.error_code == JOB_DOES_NOT_EXIST:
                return None
            raise

    answers = await asyncio.gather(*(ask(job_id) for job_id in job_ids), return_exceptions=True)
    found: list[Page] = []
    not_found = 0
    errors: list[DrsError] = []
    for job_id, answer in zip(job_ids, answers, strict=True):
        if isinstance(answer, DrsError):
            errors.append(answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            if answer is not None:
                found.append(answer)
            if answer is None or job_id not in map(job_id_of, answer.jobs):
                not_found += 1
    error = None
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        error = f"a look-up by id failed: {errors[0]}{more}"
    return _Lookups(found, not_found, error)


def _land(con: duckdb.DuckDBPyConnection, observed: list[_Observed]) -> dict[str, ProjectWatch]:
    """The projects' observations of jobs the history holds, merged in one transaction
    without sync_runs rows; if the batch fails, one project at a time, so that one bad
    project fails alone."""
    if not observed:
        return {}
    known = [_only_known(con, one) for one in observed]
    try:
        recorded = merge.apply_syncs(con, [one.sync for one in known], record_runs=False)
    except Exception as exc:
        if len(observed) > 1:
            log.info("watch: merging %d projects failed (%s); one by one now", len(observed), exc)
            landed: dict[str, ProjectWatch] = {}
            for one in observed:
                landed |= _land(con, [one])
            return landed
        (one,) = known
        log.exception("watch: project %s could not be merged", one.project.project_id)
        # Nothing of the project was written.
        return {one.project.project_id: _result(one, None, f"{type(exc).__name__}: {exc}")}
    return {
        one.project.project_id: _result(one, run, run.error)
        for one, run in zip(known, recorded, strict=True)
    }


def _only_known(con: duckdb.DuckDBPyConnection, observed: _Observed) -> _Observed:
    """The observations of jobs the history holds (gone ones included); the others are
    left to the next sync, which lists every status. A job first seen by a listing of
    watched statuses may have been through an unwatched one already (failed validation,
    and back), and the marts take a job's first observation as the start of what they
    measure from its create_time (docs/decisions/0009-the-watch.md)."""
    jobs = observed.sync.normalized.jobs
    if jobs.empty:
        return observed
    with con.cursor() as cursor:
        cursor.register("observed_ids", pd.DataFrame({"async_job_id": jobs["async_job_id"]}))
        held = cursor.execute(
            "SELECT async_job_id FROM observed_ids SEMI JOIN "
            "(SELECT async_job_id FROM drs.async_jobs WHERE project_id = ?) USING (async_job_id)",
            [observed.project.project_id],
        ).fetchnumpy()["async_job_id"]
    keep = jobs["async_job_id"].isin(set(held.tolist()))
    if keep.all():
        return observed
    normalized = Normalized(jobs[keep].reset_index(drop=True), observed.sync.normalized.rejected)
    sync = replace(observed.sync, normalized=normalized)
    return replace(observed, sync=sync, new_jobs_left=int((~keep).sum()))


def _result(observed: _Observed, run: SyncRunRow | None, error: str | None) -> ProjectWatch:
    """The report of a project that landed (``run``: as recorded), or whose merge failed."""
    project = observed.project
    failed = ProjectWatch(
        project.project_id,
        project.region,
        FAILED,
        looked_up=observed.looked_up,
        not_found=observed.not_found,
        requests=observed.sync.run.requests,
        error=error,
    )
    if run is None:
        return failed
    return replace(
        failed,
        outcome=run.outcome,
        jobs_observed=len(observed.sync.normalized.jobs),
        changed_jobs=run.changed_jobs,
        new_jobs_left=observed.new_jobs_left,
        rejected_records=run.rejected_records,
    )
