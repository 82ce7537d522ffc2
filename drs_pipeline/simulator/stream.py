"""The deterministic job stream: job ``i`` of a project, derived from a hash alone.

Every property of a stream job comes from blake2b(seed, project, i), never from
Python's salted ``hash()`` or from shared mutable state, so two processes built
from the same settings produce the same job for the same index, and any index
can be generated on its own (listing at time t touches only the visible range).

Two levels of detail, because a listing needs far less than a page does:

* ``ProjectStream.skeleton(i)``: create time and early vanish time, from one digest.
  Enough to count and order the visible jobs of a project.
* ``ProjectStream.job(i)``: the full SimJob (id, owner, lifecycle, format), only for
  rows actually served or filtered.

Job ids embed the index through a keyed permutation (see ``_IdCodec``), so a
lookup by ``async_job_id`` is O(1) instead of a scan of every generated id.

Owners: every job of a project belongs to the project's one account
(``WorldSettings.domain_of``); the user is drawn from that account's users.

Ties (``WorldSettings.tie_share``): a batch creation puts several jobs in one
second. Job ``i`` is tied with probability ``tie_share`` and then takes the create
time of job ``i - 1`` exactly, so a run of tied jobs shares its head's time. Runs
never cross a multiple of ``TIE_BLOCK`` (a block's first job is never tied), so a
tied job's time lies at most ``TIE_BLOCK - 1`` slots before its own and any job's
time is found from at most that many digests. Create times stay non-decreasing in
the index (the world bisects on them); with ``tie_share`` 0 they strictly increase
and every job is exactly what it was before ties existed.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
from collections.abc import Callable, Iterator

from drs_pipeline.drs import statuses
from drs_pipeline.simulator.model import SimJob, TimeFormat, WorldSettings

# Lifecycle constants, world seconds (divided by speed for wall time).
VALIDATE_MIN_S, VALIDATE_MAX_S = 30.0, 600.0
FAIL_PROBABILITY = 0.25
FIX_PROBABILITY = 0.7
FIX_MIN_S, FIX_MAX_S = 300.0, 7200.0
MAX_VALIDATION_ROUNDS = 3
COMMIT_PROBABILITY = 0.8
COMMIT_MIN_S, COMMIT_MAX_S = 60.0, 43200.0
# Arrival jitter stays below 1 so that create times never decrease with the index:
# the stream is sorted by construction and its visible part is an index range.
ARRIVAL_JITTER = 0.9
# Longest run of jobs sharing one create time (see the module docstring).
TIE_BLOCK = 64

_UNIT = 1.0 / 4294967296.0  # 2**-32: a 32-bit hash word to a float in [0, 1)
_WORDS = struct.Struct("<16I")
_MASK48 = (1 << 48) - 1

# Word positions in a job's first digest (16 little-endian uint32). Words 0-2 are the
# hash part of the job's UUID. The lifecycle draws from word 10 on: its common paths
# need at most 6 draws, so a second digest is rarely computed.
_W_ARRIVAL, _W_VANISH_ROLL, _W_VANISH_SHARE = 3, 4, 5
# Word 6 is unused: a project has one account (``WorldSettings.domain_of``).
_W_USER, _W_FORMAT, _W_LEGACY = 7, 8, 9
_W_LIFECYCLE = 10


def _draws(key: bytes, words: tuple[int, ...], start: int) -> Callable[[], float]:
    """Uniform [0, 1) draws: the job digest's words from ``start`` on, then words of
    further digests, computed only if the lifecycle runs that long.

    A bound ``__next__`` is the cheapest call Python has; seeding ``random.Random``
    instead would fill 624 words per job, and its output would be fixed by the
    Python version rather than by this code (docs/performance.md).
    """
    first = [w * _UNIT for w in words[start:]]
    return itertools.chain(first, _more_draws(key)).__next__


def _more_draws(key: bytes) -> Iterator[float]:
    for refill in itertools.count(1):
        digest = hashlib.blake2b(key + b"/%d" % refill, digest_size=64).digest()
        for word in _WORDS.unpack(digest):
            yield word * _UNIT


class _IdCodec:
    """Index <-> the last 48 bits of a job's UUID, through an invertible mix keyed by
    (seed, project): xor, multiply by an odd constant, xorshift, multiply, xor. An id
    thus names its index (lookup by id is O(1)), ids do not look sequential, and they
    differ between projects and seeds."""

    __slots__ = ("_k1", "_k2")
    _M1, _M2 = 0x9E3779B97F4B, 0xD6E8FEB86659  # odd: invertible modulo 2**48
    _INV1, _INV2 = pow(_M1, -1, 1 << 48), pow(_M2, -1, 1 << 48)

    def __init__(self, seed: int, project_id: str) -> None:
        digest = hashlib.blake2b(f"drs-sim-ids/{seed}/{project_id}".encode(), digest_size=12)
        raw = digest.digest()
        self._k1, self._k2 = int.from_bytes(raw[:6], "big"), int.from_bytes(raw[6:], "big")

    def encode(self, index: int) -> int:
        x = ((index ^ self._k1) * self._M1) & _MASK48
        x ^= x >> 24
        return ((x * self._M2) & _MASK48) ^ self._k2

    def decode(self, value: int) -> int:
        x = ((value ^ self._k2) * self._INV2) & _MASK48
        x ^= x >> 24  # its own inverse on 48 bits
        return ((x * self._INV1) & _MASK48) ^ self._k1


def _format_uuid(words: tuple[int, ...], tail: int) -> str:
    """A version-4-shaped UUID: 74 hash bits, then 48 bits naming the index."""
    a, b, c = words[0], words[1] & 0xFFFF, 0x4000 | (words[1] >> 16) & 0x0FFF
    return f"{a:08x}-{b:04x}-{c:04x}-{0x8000 | words[2] & 0x3FFF:04x}-{tail:012x}"


class ProjectStream:
    """The stream of one project under one settings object."""

    __slots__ = (
        "_codec",
        "_domain",
        "_interval",
        "_key",
        "_lookahead",
        "_retention",
        "project_id",
        "settings",
    )

    def __init__(self, settings: WorldSettings, project_id: str) -> None:
        self.settings = settings
        self.project_id = project_id
        self._key = f"drs-sim-job/{settings.seed}/{project_id}/".encode()
        self._codec = _IdCodec(settings.seed, project_id)
        self._interval = settings.wall_interval_s
        self._retention = settings.wall_retention_s
        self._domain = settings.domain_of(project_id)
        # A tied job can be created up to TIE_BLOCK - 1 slots before its own.
        self._lookahead = TIE_BLOCK - 1 if settings.tie_share else 0

    def _digest(self, index: int) -> tuple[bytes, tuple[int, ...]]:
        key = self._key + b"%d" % index
        return key, _WORDS.unpack(hashlib.blake2b(key, digest_size=64).digest())

    def _own_time(self, index: int, words: tuple[int, ...]) -> float | None:
        """The create time of job ``index`` if it heads a run (is not tied), else None.

        One word decides both: below ``tie_share`` the job is tied; otherwise the rest
        of the word's range, stretched back to [0, 1), is its arrival jitter (so with
        ``tie_share`` 0 the jitter is the word itself, as it always was)."""
        roll = words[_W_ARRIVAL] * _UNIT
        share = self.settings.tie_share
        if not share:
            jitter = roll
        elif roll < share:
            if index % TIE_BLOCK:
                return None
            jitter = roll / share
        else:
            jitter = (roll - share) / (1.0 - share)
        return self.settings.anchor + (index + ARRIVAL_JITTER * jitter) * self._interval

    def _create_time(
        self, index: int, words: tuple[int, ...], previous: float | None = None
    ) -> float:
        """Job ``index``'s create time; ``previous`` (job ``index - 1``'s, when the
        caller knows it) saves walking back through a run of tied jobs."""
        own = self._own_time(index, words)
        if own is not None:
            return own
        if previous is not None:
            return previous
        head = index - 1
        while (own := self._own_time(head, self._digest(head)[1])) is None:
            head -= 1
        return own

    def _times(
        self, index: int, words: tuple[int, ...], previous: float | None = None
    ) -> tuple[float, float | None]:
        """(create_time, early vanish time or None)."""
        create_time = self._create_time(index, words, previous)
        # Natural expiry is create + retention; an early vanisher goes at a random time
        # inside it (its DRS tasks were deleted, say).
        if words[_W_VANISH_ROLL] * _UNIT < self.settings.vanish_fraction:
            return create_time, create_time + words[_W_VANISH_SHARE] * _UNIT * self._retention
        return create_time, None

    def skeleton(self, index: int, previous: float | None = None) -> tuple[float, float | None]:
        """(create_time, early vanish time or None) of job ``index``; ``previous`` is
        job ``index - 1``'s create time if known (see ``_create_time``)."""
        return self._times(index, self._digest(index)[1], previous)

    def job(self, index: int) -> SimJob:
        """Job number ``index`` (0-based) in full."""
        key, words = self._digest(index)
        settings = self.settings
        create_time, early_vanish = self._times(index, words)
        domain_name, users = self._domain
        user_name = users[words[_W_USER] % len(users)]
        time_format: TimeFormat = (
            "epoch_ms" if words[_W_FORMAT] * _UNIT < settings.epoch_ms_fraction else "iso"
        )
        if words[_W_LEGACY] * _UNIT < settings.legacy_fraction:
            # The low bits pick which legacy status; the roll is decided by the high bits.
            legacy = statuses.LEGACY[words[_W_LEGACY] % len(statuses.LEGACY)]
            timeline = [(create_time, legacy)]
        else:
            draw = _draws(key, words, _W_LIFECYCLE)
            timeline = lifecycle(draw, create_time, settings.speed)
        return SimJob(
            project_id=self.project_id,
            async_job_id=_format_uuid(words, self._codec.encode(index)),
            domain_name=domain_name,
            user_name=user_name,
            create_time=create_time,
            timeline=timeline,
            vanish_at=early_vanish if early_vanish is not None else create_time + self._retention,
            time_format=time_format,
            index=index,
        )

    def index_of(self, async_job_id: str) -> int | None:
        """The index whose job would carry this id, or None if it cannot be one of
        this stream's ids. The caller confirms by generating the job and comparing."""
        if len(async_job_id) != 36 or async_job_id[23] != "-":
            return None
        try:
            tail = int(async_job_id[24:], 16)
        except ValueError:
            return None
        return self._codec.decode(tail)

    def index_range(self, t: float) -> tuple[int, int]:
        """Indices ``[lo, hi)`` that can hold a job visible at ``t``: create_time in
        ``(t - retention, t]``. A superset by a couple of jobs at each end (and, with
        ties, up to TIE_BLOCK - 1 more at the top); the caller filters exactly.
        Nothing in it is visible before the anchor."""
        anchor = self.settings.anchor
        hi = math.floor((t - anchor) / self._interval) + 1 + self._lookahead
        lo = max(0, math.floor((t - self._retention - anchor) / self._interval) - 1)
        return lo, max(lo, hi)


def lifecycle(
    draw: Callable[[], float], create_time: float, speed: float
) -> list[tuple[float, str]]:
    """Validation rounds, then an optional commit, as a sorted (at, status) timeline.

    VALIDATING, then VALIDATE_FAILED or AUTO_PARAM_VALIDATE_SUCCESS. A failed job may
    be fixed and validated again (at most MAX_VALIDATION_ROUNDS rounds); a validated
    one may be committed, after which nothing changes. ``draw()`` is uniform [0, 1).
    """
    t = create_time
    timeline = [(t, statuses.VALIDATING)]
    for round_no in range(1, MAX_VALIDATION_ROUNDS + 1):
        t += (VALIDATE_MIN_S + (VALIDATE_MAX_S - VALIDATE_MIN_S) * draw()) / speed
        if draw() < FAIL_PROBABILITY:
            timeline.append((t, statuses.VALIDATE_FAILED))
            if round_no < MAX_VALIDATION_ROUNDS and draw() < FIX_PROBABILITY:
                t += (FIX_MIN_S + (FIX_MAX_S - FIX_MIN_S) * draw()) / speed
                timeline.append((t, statuses.VALIDATING))
                continue
            break
        timeline.append((t, statuses.VALIDATE_SUCCESS))
        if draw() < COMMIT_PROBABILITY:
            t += (COMMIT_MIN_S + (COMMIT_MAX_S - COMMIT_MIN_S) * draw()) / speed
            timeline.append((t, statuses.COMMIT_SUCCESS))
        break
    return timeline
