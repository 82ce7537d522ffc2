"""The cyclic garbage collector, told that a sync allocates in bulk.

A sync decodes millions of records (a dict each, plus their columns) and keeps
every page of the projects in progress until they are merged. At Python's
default thresholds the collector runs every 700 new containers and, as the
pages held grow, keeps rescanning all of them in full collections: measured,
about a sixth of a sync's CPU, for nothing, since records hold no reference
cycles (plain refcounting frees them). During a sync the young generation is
collected every 100,000 new containers instead, which still collects the few
cycles asyncio and httpx make, and the thresholds are restored afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 100_000


@contextmanager
def bulk_allocation() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], BULK_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
