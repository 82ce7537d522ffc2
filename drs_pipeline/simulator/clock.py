"""Clocks: where the simulator reads "now" from.

The world is a pure function of time, so swapping the clock is all it takes to
make tests deterministic (ManualClock) or to let separate processes agree on the
same jobs (WallClock). SkewedClock plays a server whose clock is off.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the current time as epoch seconds."""

    def now(self) -> float: ...


class WallClock:
    """The real time: what the product's runs and the benchmarks use."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to.

    Tests move it from their own thread while the server reads it from the event
    loop thread; the lock keeps ``advance`` a single read-modify-write.
    """

    def __init__(self, start: float) -> None:
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (negative moves back) and return the new time."""
        with self._lock:
            self._t += seconds
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = float(t)

    def __repr__(self) -> str:
        return f"ManualClock({self.now()!r})"


class SkewedClock:
    """Another clock's time plus a fixed skew: a server whose clock runs ahead of
    (positive ``skew_s``) or behind the clock it is built on."""

    def __init__(self, inner: Clock, skew_s: float) -> None:
        self.inner = inner
        self.skew_s = float(skew_s)

    def now(self) -> float:
        return self.inner.now() + self.skew_s

    def __repr__(self) -> str:
        return f"SkewedClock({self.inner!r}, {self.skew_s!r})"
