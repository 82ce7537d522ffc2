"""Fault injection: what can go wrong between the client and the API.

Two layers, checked in this order after a request is known to be valid:

1. a scripted queue, for precise tests: "the next matching request gets this";
2. random switches (rates in [0, 1]) drawn from a seeded ``random.Random`` so a
   run can be replayed: 429, 5xx, malformed 200, and drift (the list shifting
   between page requests).

``latency_s`` applies to every response. All fields may be changed while the
server runs; single attribute writes are atomic enough for that.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["respond", "drop", "stall"]


@dataclass
class ScriptedFault:
    """What the next matching request gets instead of its normal response.

    kind:
      * ``"respond"``: send ``status`` (default 503) with ``body`` and ``headers``.
        ``body`` may be bytes/str (sent verbatim: truncated JSON and the like), a
        dict or list (sent as JSON), or None (the documented error body for status).
      * ``"drop"``: close the connection without any response.
      * ``"stall"``: send the headers and half the body, hang ``stall_s`` seconds,
        then close the connection. The response is the normal one unless
        ``status``/``body`` are given.

    Matching: ``project_id`` and ``offset`` None match anything. ``times`` is how
    many matching requests it applies to (it counts down as they arrive).
    """

    status: int | None = None
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    kind: FaultKind = "respond"
    project_id: str | None = None
    offset: int | None = None
    times: int = 1
    stall_s: float = 30.0

    def matches(self, project_id: str, offset: int) -> bool:
        return (self.project_id is None or self.project_id == project_id) and (
            self.offset is None or self.offset == offset
        )


@dataclass
class Faults:
    """Runtime fault switches, all off by default."""

    latency_s: float = 0.0
    rate_429: float = 0.0
    # Retry-After header value for random 429s: seconds, "0", an HTTP-date, or None
    # for no header at all.
    retry_after: str | None = "1"
    rate_5xx: float = 0.0
    rate_malformed: float = 0.0
    # On a list request with offset > 0: add a job now and/or vanish a visible one.
    drift_rate: float = 0.0
    seed: int = 0
    rng: random.Random = field(init=False, repr=False)
    _queue: deque[ScriptedFault] = field(init=False, repr=False, default_factory=deque)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def script(self, *responses: ScriptedFault) -> None:
        """Queue scripted faults; each is used by the next requests it matches."""
        with self._lock:
            self._queue.extend(responses)

    def pending(self) -> int:
        """Scripted faults not used up yet."""
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Switch everything off: empty the queue and zero every rate and latency."""
        with self._lock:
            self._queue.clear()
        self.latency_s = self.rate_429 = self.rate_5xx = 0.0
        self.rate_malformed = self.drift_rate = 0.0

    def take(self, project_id: str, offset: int) -> ScriptedFault | None:
        """Use up one application of the first queued fault matching this request."""
        with self._lock:
            for position, fault in enumerate(self._queue):
                if fault.matches(project_id, offset):
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._queue[position]
                    return fault
        return None

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``. A zero rate draws nothing, so a run with a
        fault switched off replays the same as one where it never existed."""
        return rate > 0 and self.rng.random() < rate
