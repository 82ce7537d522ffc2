"""The cyclic garbage collector's setting during a sync, applied by the entry points.

A sync allocates records in bulk and keeps the pages of the projects in progress,
none of which hold reference cycles; at Python's default thresholds the collector
keeps rescanning them for nothing. ``bulk_allocation`` collects the young
generation less often for the duration of a ``with`` block and restores the
thresholds afterwards (docs/decisions/0004-gc-setting.md).

It is process-wide, so the process's entry point applies it around its sync (the
Dagster ingest step, the benchmark), never ``sync.run_sync`` itself.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# New containers between collections of the young generation (Python's default: 700).
BULK_THRESHOLD = 100_000


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """The young generation collected every ``BULK_THRESHOLD`` new containers (or the
    current threshold, if higher) inside the block; the thresholds as they were after."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], BULK_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
