"""One sync: every configured project listed, normalized and merged into the history.

Projects run concurrently: while one project's pages are in flight others'
snapshots are merged. Writes are serialized (one DuckDB connection, one writer)
and projects land in batches (``warehouse.writer``), each all or nothing; a
project that fails writes only its ``drs.sync_runs`` row and never stops the
others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from drs_pipeline.config import (
    DEFAULT_MAX_ABSENCE_CHECKS,
    DEFAULT_MAX_GONE_SHARE,
    ProjectSettings,
    Settings,
)
from drs_pipeline.drs.absence import CONTROLS, Absence, confirm_absent, jobs_settled_by
from drs_pipeline.drs.client import DrsClient, Page, PagingPolicy, ProjectTarget, utc_now
from drs_pipeline.drs.clock import server_clock_offset_s
from drs_pipeline.drs.errors import DrsError
from drs_pipeline.drs.listing import Listing, job_id_of, list_again, list_project
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.drs.targets import build_targets
from drs_pipeline.warehouse.merge import ProjectSync, SyncRunRow
from drs_pipeline.warehouse.normalize import (
    Normalized,
    normalize_clean_pages,
    normalize_pages_carefully,
)
from drs_pipeline.warehouse.store import Warehouse
from drs_pipeline.warehouse.target import claim_target
from drs_pipeline.warehouse.writer import BatchingWriter

log = logging.getLogger(__name__)

OK, INCOMPLETE, FAILED = "ok", "incomplete", "failed"


@dataclass(frozen=True)
class TrustPolicy:
    """How much of a listing's word is taken before jobs are marked gone."""

    # More than this share of a project's present jobs missing marks nothing gone.
    max_gone_share: float = DEFAULT_MAX_GONE_SHARE
    # By-id requests per project and sync; missing jobs past what they settle leave
    # the project incomplete, and wait for the next syncs.
    max_absence_checks: int = DEFAULT_MAX_ABSENCE_CHECKS

    @classmethod
    def of(cls, settings: Settings) -> TrustPolicy:
        return cls(settings.max_gone_share, settings.max_absence_checks)


@dataclass(frozen=True)
class ProjectResult:
    run: SyncRunRow
    region: str
    # Of the error that failed the project, for reports; None when it did not fail.
    error_code: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class SyncReport:
    sync_id: str
    database: Path
    started_at: datetime
    finished_at: datetime
    projects: tuple[ProjectResult, ...]
    requests: int

    @property
    def all_ok(self) -> bool:
        return all(p.run.outcome == OK for p in self.projects)

    def count(self, outcome: str) -> int:
        return sum(p.run.outcome == outcome for p in self.projects)


def new_sync_id(now: datetime) -> str:
    """Sortable by time, unique across machines: ``20261128T173855Z-3f9a1c``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_sync(
    settings: Settings,
    database: Path,
    *,
    retry: RetryPolicy | None = None,
    paging: PagingPolicy | None = None,
    clock: Callable[[], datetime] = utc_now,
    lock_timeout_s: float = 30.0,
) -> SyncReport:
    """Sync every configured project once into the database at ``database``.

    The garbage collector's setting for a sync (``collector.bulk_allocation``) is
    the caller's: entry points apply it around this call
    (docs/decisions/0004-gc-setting.md).
    """

    async def main() -> SyncReport:
        # The database opens in a thread while the client is built (its TLS context
        # loads the CA bundle), so that neither waits for the other
        # (docs/decisions/0005-http-stack.md). run_in_executor starts it now; a task
        # would wait for the loop's next turn.
        opening = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(Warehouse, database, lock_timeout_s=lock_timeout_s)
        )
        try:
            drs = build_targets(settings, retry=retry, paging=paging, clock=clock)
        except BaseException:
            # The client's error is the one to report, whatever the database did.
            with suppress(Exception):
                (await opening).close()
            raise
        async with drs.client:
            with await opening as warehouse:
                # Before anything is requested or written: real history and the embedded
                # simulator's never mix (warehouse.target).
                claim_target(warehouse.connection, database, settings)
                return await sync_projects(
                    settings.projects,
                    drs.client,
                    warehouse,
                    clock=clock,
                    targets=drs.projects,
                    trust=TrustPolicy.of(settings),
                )

    return asyncio.run(main())


async def sync_projects(
    projects: tuple[ProjectSettings, ...],
    client: DrsClient,
    warehouse: Warehouse,
    *,
    clock: Callable[[], datetime] = utc_now,
    targets: Mapping[str, ProjectTarget] | None = None,
    trust: TrustPolicy | None = None,
) -> SyncReport:
    """``targets``: each project's endpoint and auth (``drs.targets``); a project
    without one is requested with the client's own auth."""
    trust = trust or TrustPolicy()
    started_at = clock()
    sync_id = new_sync_id(started_at)
    writer = BatchingWriter(
        warehouse,
        [project.project_id for project in projects],
        history_jobs=await asyncio.to_thread(warehouse.job_rows),
    )
    # As of this sync's start; a project's rows change only by its own merge, later.
    present_jobs = await asyncio.to_thread(warehouse.present_job_counts)
    done = 0

    async def one(project: ProjectSettings) -> ProjectResult:
        nonlocal done
        target = (targets or {}).get(project.project_id) or ProjectTarget(
            project.project_id, project.endpoint
        )
        try:
            result = await _sync_project(
                sync_id,
                project,
                target,
                client,
                writer,
                clock,
                present_jobs=present_jobs.get(project.project_id, 0),
                trust=trust,
            )
        finally:
            # Landed or not, this project will queue nothing more for the writer.
            writer.close_project(project.project_id)
        done += 1
        run = result.run
        log.info(
            "[%d/%d] project %s (%s): %s, %d pages, %d jobs, %d new, %d changed, %d gone, "
            "%d rejected%s",
            done,
            len(projects),
            project.project_id,
            project.region,
            run.outcome,
            run.pages,
            run.jobs_seen,
            run.new_jobs,
            run.changed_jobs,
            run.gone_jobs,
            run.rejected_records,
            f": {run.error}" if run.error else "",
        )
        return result

    log.info("sync %s: %d projects into %s", sync_id, len(projects), warehouse.path)
    results = await asyncio.gather(*(one(p) for p in projects))
    return SyncReport(
        sync_id=sync_id,
        database=warehouse.path,
        started_at=started_at,
        finished_at=clock(),
        projects=tuple(results),
        requests=client.requests_sent,
    )


async def _normalize(observations: list[Page], project: ProjectSettings) -> Normalized:
    # A clean project (nearly all) on the event loop's own thread: normalizing holds
    # the GIL throughout, so a worker thread would run nothing in parallel
    # (docs/decisions/0006-normalization.md).
    project_id, region = project.project_id, project.region
    clean = normalize_clean_pages(observations, project_id=project_id, region=region)
    if clean is not None:
        return clean
    # A project with a record in doubt gets every record checked, far slower: in a
    # thread, so that a large one does not stop the loop.
    return await asyncio.to_thread(
        normalize_pages_carefully, observations, project_id=project_id, region=region
    )


def _seen_ids(listing: Listing, normalized: Normalized) -> pd.Series:
    """Ids of every record listed, malformed ones included (they still exist)."""
    if normalized.rejected.empty:
        # Every record became a row: the rows' ids are the same set, already in a column.
        return normalized.jobs["async_job_id"]
    return pd.Series(list(listing.seen_ids()), dtype="str")


async def _sync_project(
    sync_id: str,
    project: ProjectSettings,
    target: ProjectTarget,
    client: DrsClient,
    writer: BatchingWriter,
    clock: Callable[[], datetime],
    *,
    present_jobs: int,
    trust: TrustPolicy,
) -> ProjectResult:
    """``present_jobs``: how many of this project's jobs the history holds as not
    gone; without any, no job can have left, and the look-up is skipped (a
    project's first sync)."""
    started_at = clock()
    listing: Listing | None = None

    def requests() -> int:
        return client.requests_by_project[project.project_id]

    async def failed(
        error: str, error_code: str | None = None, request_id: str | None = None
    ) -> ProjectResult:
        pages = listing.pages if listing else []
        return await _record_failure(
            sync_id,
            project,
            writer,
            started_at,
            clock,
            pages,
            requests(),
            error,
            error_code=error_code,
            request_id=request_id,
        )

    try:
        listing = await list_project(client, target)
        observations = list(listing.pages)
        normalized = await _normalize(observations, project)
        outcome, error = OK, None
        confirmed_gone: frozenset[str] = frozenset()
        if not listing.complete:
            # What was seen still lands; nothing is marked gone on a partial view.
            outcome, error = INCOMPLETE, f"listing incomplete: {listing.incomplete_reason}"
        elif present_jobs:
            settled = await _settle_missing(
                project, target, client, writer, listing, normalized, present_jobs, trust
            )
            confirmed_gone, error = settled.gone, settled.doubt
            outcome = OK if error is None else INCOMPLETE
            if settled.observations or len(listing.pages) != len(observations):
                # Listed again, or found by id: every observation counts.
                observations = list(listing.pages) + settled.observations
                normalized = await _normalize(observations, project)
        run = SyncRunRow(
            sync_id=sync_id,
            project_id=project.project_id,
            started_at=started_at,
            finished_at=clock(),
            outcome=outcome,
            error=error,
            pages=len(listing.pages),
            jobs_seen=len(normalized.jobs),
            total_count=listing.total_count,
            requests=requests(),
            server_clock_offset_s=server_clock_offset_s(observations),
        )
        gone_at = clock()
        recorded = await writer.merge(ProjectSync(run, normalized, confirmed_gone, gone_at))
        return ProjectResult(run=recorded, region=project.region)
    except DrsError as exc:
        return await failed(str(exc), exc.error_code, exc.request_id)
    except Exception as exc:
        # One project's unexpected failure (a database error, a bug) must not
        # stop the others; it is recorded and logged with its traceback.
        log.exception("project %s failed unexpectedly", project.project_id)
        return await failed(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Settled:
    """What became of the known jobs a complete listing lacked."""

    gone: frozenset[str]
    # By-id answers that showed a job after all.
    observations: list[Page]
    # Why the project is incomplete after all, if it is.
    doubt: str | None


async def _settle_missing(
    project: ProjectSettings,
    target: ProjectTarget,
    client: DrsClient,
    writer: BatchingWriter,
    listing: Listing,
    normalized: Normalized,
    present_jobs: int,
    trust: TrustPolicy,
) -> Settled:
    """Which present jobs the listing lacked are really gone: asked by id, within
    bounds, and only when the listing does not contradict the history wholesale."""

    async def missing_now() -> set[str]:
        # As last committed: nothing but this project's own merge, later, changes
        # its rows. Read now rather than before listing, so that only the projects
        # in progress hold theirs in memory.
        seen = _seen_ids(listing, normalized)
        return await asyncio.to_thread(writer.warehouse.missing_job_ids, project.project_id, seen)

    # At least one job may always leave: a project of three jobs loses a third of
    # them when one goes.
    allowed = max(1.0, trust.max_gone_share * present_jobs)
    missing = await missing_now()
    if not missing:
        return Settled(frozenset(), [], None)
    if len(missing) > allowed:
        # A listing far shorter than the history (an empty answer, a short one) is
        # a glitch until a second listing says the same.
        log.warning(
            "project %s: %d of its %d present jobs were not listed; listing it again",
            project.project_id,
            len(missing),
            present_jobs,
        )
        # The counts that listing began with came with the answers in doubt.
        listing.forget_counts()
        await list_again(client, target, listing)
        normalized = await _normalize(list(listing.pages), project)
        if not listing.complete:
            return Settled(
                frozenset(),
                [],
                f"listing incomplete when listed again: {listing.incomplete_reason}",
            )
        missing = await missing_now()
        if len(missing) > allowed:
            return Settled(
                frozenset(),
                [],
                f"{len(missing)} of the {present_jobs} present jobs "
                f"({len(missing) / present_jobs:.0%}) were missing from two listings, more "
                f"than max_gone_share ({trust.max_gone_share:g}): nothing marked gone; if "
                "they really left, raise max_gone_share for one sync",
            )
    # Each job takes up to two answers, and two controls per project: within
    # max_absence_checks requests (drs.absence).
    checked = sorted(missing)[: jobs_settled_by(trust.max_absence_checks)]
    absence = Absence(frozenset(), ())
    if checked:
        controls = _controls(listing, missing)
        absence = await confirm_absent(client, target, checked, controls=controls)
    doubt = absence.inconclusive
    if doubt is None and len(missing) > len(checked):
        doubt = (
            f"{len(missing)} jobs missing from the listing, {len(checked)} asked for by id "
            f"(max_absence_checks {trust.max_absence_checks} settles "
            f"{jobs_settled_by(trust.max_absence_checks)} a sync: two answers each, and "
            "two controls); the rest are asked for by the next syncs"
        )
    return Settled(absence.gone, list(absence.found), doubt)


def _controls(listing: Listing, missing: set[str]) -> list[str]:
    """Two jobs of the listing's last pages (its newest observations, least likely to
    have left since), to ask for by id beside the missing ones."""
    controls: list[str] = []
    for page in reversed(listing.pages):
        for job_id in map(job_id_of, page.jobs[-1:] + page.jobs[:1]):
            if job_id is not None and job_id not in missing and job_id not in controls:
                controls.append(job_id)
            if len(controls) == CONTROLS:
                return controls
    return controls


async def _record_failure(
    sync_id: str,
    project: ProjectSettings,
    writer: BatchingWriter,
    started_at: datetime,
    clock: Callable[[], datetime],
    pages: list[Page],
    requests: int,
    error: str,
    *,
    error_code: str | None = None,
    request_id: str | None = None,
) -> ProjectResult:
    run = SyncRunRow(
        sync_id=sync_id,
        project_id=project.project_id,
        started_at=started_at,
        finished_at=clock(),
        outcome=FAILED,
        error=error,
        pages=len(pages),
        jobs_seen=0,
        total_count=None,
        requests=requests,
        # What the pages listed before the failure show; None when none was listed.
        server_clock_offset_s=server_clock_offset_s(pages),
    )
    await writer.call(lambda: writer.warehouse.record_run(run))
    return ProjectResult(
        run=run, region=project.region, error_code=error_code, request_id=request_id
    )
