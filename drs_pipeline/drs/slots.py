"""The budget of requests in flight, handed out to the oldest project first.

Served by priority (a project's rank: the order in which it first asked), the
slots go to the project that started first whenever it has a request waiting,
and to the others only to fill what it leaves free, never idle while anyone
waits. Projects then finish one after the other, their merges overlap the
fetching of the next ones, and only the few in progress are held in memory,
where a plain semaphore's arrival order would finish them all together at the
end (docs/decisions/0005-http-stack.md).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PrioritySlots:
    """At most ``size`` holders at once; waiters are served lowest priority first,
    in arrival order among equals."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._free = size
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    @asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrival), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                # Handed a slot at the moment we were cancelled: pass it on.
                self._release()
            # Otherwise the cancelled future stays in the heap and is skipped.
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                # The slot goes straight to the next waiter, never back to the pool
                # where a newcomer of lower rank could take it first.
                granted.set_result(None)
                return
        self._free += 1
