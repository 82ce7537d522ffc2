"""The one writer of the history during a sync: off the event loop, projects merged together.

DuckDB has one writer per file and a connection runs one statement at a time,
so writes are serialized. And a merge costs two things: work for each row it
brings, and a pass over the history tables it merges into (the join that
classifies each job, whatever the batch's size). Merging each project on its
own would pay that pass once per project: for a hundred projects of 10,000
jobs, a hundred passes over a million rows.

So projects that are ready to land wait in a queue and are merged together,
in one transaction, once one of these holds:

* every project of the sync has either queued or ended otherwise (nothing
  more will come: the last batch never waits for anything);
* the queued jobs reach a third of the jobs the history already holds: each
  pass over the tables then brings at least a third as many rows as it reads,
  so a sync makes a handful of passes, and the last batch, the one the sync
  waits for once every page is in, stays small. Into a small history (the
  first sync) merging starts with the first project, and while a merge runs
  the next batch queues, so batches grow with the history;
* the oldest queued project has waited ``max_wait_s``: a long sync still lands
  as it goes.

DuckDB releases the GIL while it merges, so pages keep arriving meanwhile.

All or nothing per batch, which keeps each project all or nothing. If a batch
fails, its projects are merged again one by one, so that one bad project
fails alone, as it would have without batching.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from drs_pipeline.warehouse.store import ProjectSync, SyncRunRow, Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

# No lower bound on a batch: one was tried (125,000 jobs, so that every insert would
# fill a row group, which DuckDB writes straight to the file instead of through the
# write-ahead log), but waiting for it cost more than the log saves. Measured, 3 runs
# each, alternating: a cold million-job sync 8.75 s with it, 7.84 s without (its
# merges start at once and overlap the fetching); 20 x 5,000 jobs at 100 ms a
# response, 2.6 s with it (one merge after the last page), 2.25 s without.
MAX_WAIT_S = 30.0


class BatchingWriter:
    """``merge`` for each project that lands, ``close_project`` for each that ends
    (landed or not) so the writer knows when nothing more will come."""

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
