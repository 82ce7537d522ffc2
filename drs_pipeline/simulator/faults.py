"""Fault injection: what can go wrong between the client and the API.

Three layers, checked in this order after a request is known to be valid:

1. a scripted queue, for precise tests: "the next matching request gets this";
2. random switches (rates in [0, 1]) drawn from a seeded ``random.Random`` so a
   run can be replayed: 429, 5xx, malformed 200, and drift (the list shifting
   between page requests);
3. behaviours the documentation leaves open (docs/drs-api.md, "What the
   documentation does not promise"), each a plain switch, all off by default:

   * ``max_page``: at most this many rows per page whatever ``limit`` asks; any
     ``limit`` >= 1 is then accepted (no 400 DRS.M00211), total_count unchanged.
   * ``random_ties``: jobs whose create_time is the same second come back in a
     fresh random order on every request (both directions, filtered or not), as a
     server without a tie-breaker may: offset paging over a tie group then skips
     some and repeats others. Off: ties are ordered by id.
   * ``empty_first_listing``: each project's first unfiltered request at offset 0
     after the switch is set gets 200 ``{"total_count": 0, "jobs": []}``;
     ``empty_listings``: the next N such requests (any project) get it, counting
     down. "Unfiltered" and "offset 0" are read from the request as sent.
   * ``ignore_id_filter``: ``async_job_id=`` is ignored.
   * ``unknown_id_error``: a by-id request for a job that is not listed (whatever
     the other filters) gets 400 DRS.10000010 instead of an empty list.
   * ``total_count``: every list answer reports this total_count.
   * ``ignore_offset``: every page is the first page.
   * ``trickle_s``: a 200 list answer (not a scripted one) sends its headers at
     once, then its body one byte every ``trickle_s`` seconds, stopping as soon as
     the client disconnects.
   * ``no_date_header``: responses carry no ``Date`` header, as from an origin
     server without a clock (RFC 9110 6.6.1: one with a clock must send it with
     every 2xx, 3xx and 4xx answer).

``latency_s`` applies to every response. All fields may be changed while the
server runs; single attribute writes are atomic enough for that. ``clear()``
switches everything off. Random draws (including the tie shuffle) come from
``rng``, seeded by ``seed``, so a run replays.
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

    Matching: ``project_id``, ``offset`` and ``async_job_id`` None match anything. ``times`` is how
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
    # Only requests asking for this job by id (``async_job_id=``); None matches any.
    async_job_id: str | None = None

    def matches(self, project_id: str, offset: int, async_job_id: str | None = None) -> bool:
        return (
            (self.project_id is None or self.project_id == project_id)
            and (self.offset is None or self.offset == offset)
            and (self.async_job_id is None or self.async_job_id == async_job_id)
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
    # What the documentation leaves open (see the module docstring).
    max_page: int | None = None
    random_ties: bool = False
    empty_first_listing: bool = False
    empty_listings: int = 0
    ignore_id_filter: bool = False
    unknown_id_error: bool = False
    total_count: int | None = None
    ignore_offset: bool = False
    trickle_s: float = 0.0
    no_date_header: bool = False
    seed: int = 0
    rng: random.Random = field(init=False, repr=False)
    _queue: deque[ScriptedFault] = field(init=False, repr=False, default_factory=deque)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    # Projects that had their empty first listing since empty_first_listing was set.
    _emptied: set[str] = field(init=False, repr=False, default_factory=set)

    def __post_init__(self) -> None:
        if self.max_page is not None and self.max_page < 1:
            raise ValueError("max_page must be at least 1")
        self.rng = random.Random(self.seed)

    def __setattr__(self, name: str, value: Any) -> None:
        # Setting empty_first_listing (again) re-arms it for every project.
        if name == "empty_first_listing":
            object.__setattr__(self, "_emptied", set())
        object.__setattr__(self, name, value)

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
        """Switch everything off: empty the queue, zero every rate and latency, and
        turn off every undocumented behaviour."""
        with self._lock:
            self._queue.clear()
            self.empty_listings = 0
        self.latency_s = self.rate_429 = self.rate_5xx = 0.0
        self.rate_malformed = self.drift_rate = self.trickle_s = 0.0
        self.max_page = self.total_count = None
        self.random_ties = self.empty_first_listing = False
        self.ignore_id_filter = self.unknown_id_error = self.ignore_offset = False
        self.no_date_header = False

    def take_empty(self, project_id: str) -> bool:
        """Whether this unfiltered offset-0 request gets the empty answer: the
        project's first since ``empty_first_listing`` was set, else one of the
        ``empty_listings`` left (counted down)."""
        with self._lock:
            if self.empty_first_listing and project_id not in self._emptied:
                self._emptied.add(project_id)
                return True
            if self.empty_listings > 0:
                self.empty_listings -= 1
                return True
        return False

    def take(
        self, project_id: str, offset: int, async_job_id: str | None = None
    ) -> ScriptedFault | None:
        """Use up one application of the first queued fault matching this request."""
        with self._lock:
            for position, fault in enumerate(self._queue):
                if fault.matches(project_id, offset, async_job_id):
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._queue[position]
                    return fault
        return None

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``. A zero rate draws nothing, so a run with a
        fault switched off replays the same as one where it never existed."""
        return rate > 0 and self.rng.random() < rate
