"""Helpers shared by the reliability tests (fixtures stay in tests/conftest.py; the
helpers of every test file are in tests/helpers.py)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import httpx

from drs_pipeline.config import Settings, TokenAuthSettings
from drs_pipeline.drs.auth import TokenAuth
from drs_pipeline.drs.client import DrsClient, PagingPolicy
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.sync import SyncReport, sync_projects
from drs_pipeline.warehouse.store import open_warehouse

from ..helpers import QUICK_RETRY, Simulator, query

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Hypothesis example counts are multiplied by this under DRS_HYPOTHESIS_PROFILE=thorough.
THOROUGH = os.environ.get("DRS_HYPOTHESIS_PROFILE", "") == "thorough"


def examples(default: int) -> int:
    """How many hypothesis examples a property runs: few by default, many when asked."""
    return default * 25 if THOROUGH else default


class RecordingSleep:
    """The client's sleep: records each wait instead of waiting (or waits a fraction of
    it with ``scale``), so tests can check what was asked for without paying for it."""

    def __init__(self, scale: float = 0.0) -> None:
        self.delays: list[float] = []
        self.scale = scale

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(seconds * self.scale)


def sync_with(
    simulator: Simulator,
    settings: Settings,
    database: Path,
    *,
    retry: RetryPolicy = QUICK_RETRY,
    paging: PagingPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    timeout: float | None = None,
    clock: Callable[[], datetime] | None = None,
) -> SyncReport:
    """A real sync (every project, normalize, merge) whose client is built here, so a
    test can record its waits and shorten its timeouts. ``run_sync`` does the same
    with production defaults."""
    clock = clock or simulator.now
    assert isinstance(settings.auth, TokenAuthSettings)

    async def main() -> SyncReport:
        client = DrsClient(
            auth=TokenAuth(settings.auth.token),
            paging=paging or PagingPolicy(page_size=settings.page_size),
            retry=retry,
            max_concurrency=settings.max_concurrency,
            timeout=httpx.Timeout(timeout) if timeout is not None else None,
            clock=clock,
            sleep=sleep or asyncio.sleep,
        )
        async with client:
            with open_warehouse(database) as warehouse:
                return await sync_projects(settings.projects, client, warehouse, clock=clock)

    return asyncio.run(main())


def add_jobs(simulator: Simulator, project_id: str, count: int, **fields: object) -> list[str]:
    """``count`` scripted jobs created a second apart, oldest first, ending now."""
    now = simulator.clock.now()
    return [
        simulator.world.add_job(
            project_id,
            create_time=now - count + i,
            time_format="epoch_ms" if i % 3 == 0 else "iso",
            **fields,  # type: ignore[arg-type]
        ).async_job_id
        for i in range(count)
    ]


def ids(database: Path, project_id: str | None = None, *, gone: bool | None = None) -> set[str]:
    """Job ids stored, optionally of one project and only gone (or only present) ones."""
    rows = query(
        database,
        "SELECT async_job_id FROM drs.async_jobs "
        "WHERE ($1::VARCHAR IS NULL OR project_id = $1) AND ($2::BOOLEAN IS NULL OR is_gone = $2)",
        [project_id, gone],
    )
    return {row[0] for row in rows}


def project_rows(database: Path, project_id: str) -> dict[str, list[tuple[object, ...]]]:
    """Everything a project has in the history but its sync_runs rows: a failed sync
    must leave this exactly as it was."""
    return {
        table: query(
            database,
            f"SELECT * FROM drs.{table} WHERE project_id = ? ORDER BY ALL",
            [project_id],
        )
        for table in ("async_jobs", "async_job_history", "rejected_records")
    }


def visible(simulator: Simulator, project_id: str) -> dict[str, str]:
    """What the API lists for the project right now: id to status."""
    now = simulator.clock.now()
    return {
        job.async_job_id: job.status_at(now)
        for job in simulator.world.list_jobs(project_id, now, sort_dir="asc")
    }


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours without DRS_/DAGSTER_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    return {**env, **extra}
