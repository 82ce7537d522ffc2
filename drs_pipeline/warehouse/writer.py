"""The one writer of the history during a sync: projects queued, then merged together.

Each merge passes over the history tables whatever its size, so projects ready
to land wait in a queue and are merged in batches, in a thread beside the event
loop (docs/decisions/0003-merge-design.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from drs_pipeline.warehouse.merge import ProjectSync, SyncRunRow
from drs_pipeline.warehouse.store import Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

# The longest a queued project waits for others to merge with; a batch has no
# smallest size (docs/decisions/0003-merge-design.md).
MAX_WAIT_S = 30.0


class BatchingWriter:
    """``merge`` for each project that lands, ``close_project`` for each that ends
    (landed or not) so the writer knows when nothing more will come.

    The queued projects are merged together, in one transaction, once one of these
    holds:

    * every project of the sync has queued or ended: nothing more will come;
    * the queued jobs reach a third of the jobs the history holds, so each pass over
      the tables brings at least a third as many rows as it reads (into an empty
      history the first project merges at once; batches grow with the history);
    * the oldest queued project has waited ``max_wait_s``.

    All or nothing per batch. If a batch fails, its projects are merged again one by
    one, so that one bad project fails alone.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        project_ids: Iterable[str],
        *,
        history_jobs: int = 0,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self.warehouse = warehouse
        self._open = set(project_ids)
        self._history_jobs = history_jobs
        self._max_wait_s = max_wait_s
        self._lock = asyncio.Lock()
        self._queued: list[tuple[ProjectSync, asyncio.Future[SyncRunRow]]] = []
        self._queued_jobs = 0
        self._oldest_at = 0.0
        self._changed = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def call(self, function: Callable[[], T]) -> T:
        """Run one warehouse call on its own, in turn with the merges."""
        async with self._lock:
            return await asyncio.to_thread(function)

    async def merge(self, sync: ProjectSync) -> SyncRunRow:
        """Land one project's sync with the others queued; its run as recorded."""
        landed: asyncio.Future[SyncRunRow] = asyncio.get_running_loop().create_future()
        if not self._queued:
            self._oldest_at = time.monotonic()
        self._queued.append((sync, landed))
        self._queued_jobs += len(sync.normalized.jobs)
        self.close_project(sync.run.project_id)
        return await landed

    def close_project(self, project_id: str) -> None:
        """The project will queue nothing (more); idempotent."""
        self._open.discard(project_id)
        self._changed.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_when_ready())

    def _ready(self) -> bool:
        if not self._queued:
            return False
        return not self._open or self._queued_jobs >= self._history_jobs // 3

    async def _flush_when_ready(self) -> None:
        while self._queued:
            while not self._ready():
                self._changed.clear()
                left = self._oldest_at + self._max_wait_s - time.monotonic()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=left)
                except TimeoutError:
                    break
            batch, self._queued, self._queued_jobs = self._queued, [], 0
            async with self._lock:
                await self._land(batch)
            if self._queued:
                self._oldest_at = time.monotonic()

    async def _land(self, batch: list[tuple[ProjectSync, asyncio.Future[SyncRunRow]]]) -> None:
        syncs = [sync for sync, _ in batch]
        jobs = sum(len(sync.normalized.jobs) for sync in syncs)
        started = time.monotonic()
        try:
            try:
                recorded = await asyncio.to_thread(self.warehouse.apply_project_syncs, syncs)
                log.debug(
                    "merged %d projects, %d jobs, in %.2f s",
                    len(syncs),
                    jobs,
                    time.monotonic() - started,
                )
            except Exception as exc:
                if len(batch) == 1:
                    batch[0][1].set_exception(exc)
                    return
                log.info("merging %d projects failed (%s); one by one now", len(batch), exc)
                for one in batch:
                    await self._land([one])
                return
            self._history_jobs += sum(run.new_jobs for run in recorded)
            for (_, landed), run in zip(batch, recorded, strict=True):
                landed.set_result(run)
        except BaseException:
            # Cancelled mid-merge: the waiters must not wait forever.
            for _, landed in batch:
                if not landed.done():
                    landed.cancel()
            raise
