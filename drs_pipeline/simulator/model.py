"""The simulator's data: one job (SimJob), one project (SimProject) and the
settings a world is built from (WorldSettings).

Kept apart from world.py so that stream.py (which derives jobs from a hash) and
world.py (which lists them) can both use these types without a cycle.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

TimeFormat = Literal["iso", "epoch_ms"]

ANCHOR_2026: float = float(calendar.timegm((2026, 1, 1, 0, 0, 0, 0, 0, 0)))
REGIONS: tuple[str, ...] = ("cn-south-2", "cn-south-4")

# Tenants (account names) and the IAM users working in each. Invented names: the
# API only promises strings. A project belongs to one account, as real projects do:
# project k of a world is ``domains[k % len(domains)]``'s (WorldSettings.domain_of).
DEFAULT_DOMAINS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("acme-data", ("dba-li", "etl-bot", "ops-wang")),
    ("northwind", ("migrator", "dba-chen")),
    ("tenant-zhou", ("zhou-admin", "sync-svc", "audit-ro")),
)


def format_create_time(create_time: float, time_format: TimeFormat) -> str:
    """Render ``create_time`` the two ways the API has been seen to: ISO-8601 UTC with
    ``Z`` at seconds precision, or epoch milliseconds as a decimal string."""
    if time_format == "epoch_ms":
        return str(math.floor(create_time * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(create_time)))


@dataclass(slots=True)
class SimJob:
    """One batch async job as the server knows it.

    Mutable on purpose: scripted changes (status, owner, vanish) edit the job in
    place, so every listing that holds it sees the change. Equality compares the
    fields (a regenerated stream job equals the evicted one); not hashable.
    """

    project_id: str
    async_job_id: str
    domain_name: str
    user_name: str
    create_time: float
    # Sorted (at, status); the first entry is at create_time.
    timeline: list[tuple[float, str]]
    vanish_at: float | None = None
    time_format: TimeFormat = "iso"
    # When set, served verbatim instead of the derived record (malformed-input tests).
    raw: dict[str, Any] | None = None
    # Position in the project's deterministic stream; None for scripted jobs.
    index: int | None = None
    _create_str: tuple[TimeFormat, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def status_at(self, t: float) -> str:
        # Timelines hold a handful of entries: a reverse scan beats bisect with a key.
        timeline = self.timeline
        for at, status in reversed(timeline):
            if at <= t:
                return status
        return timeline[0][1]

    def visible_at(self, t: float) -> bool:
        return self.create_time <= t and (self.vanish_at is None or t < self.vanish_at)

    def create_time_str(self) -> str:
        # Cached because a 1000-row page would otherwise format 1000 dates per request;
        # keyed by format so that changing time_format afterwards still works.
        cached = self._create_str
        if cached is None or cached[0] != self.time_format:
            cached = (self.time_format, format_create_time(self.create_time, self.time_format))
            self._create_str = cached
        return cached[1]

    def record_at(self, t: float) -> dict[str, Any]:
        """The job as the API lists it at time ``t``: five string fields, or ``raw``."""
        if self.raw is not None:
            return self.raw
        return {
            "async_job_id": self.async_job_id,
            "status": self.status_at(t),
            "domain_name": self.domain_name,
            "user_name": self.user_name,
            "create_time": self.create_time_str(),
        }


@dataclass(frozen=True, slots=True)
class SimProject:
    project_id: str  # 32 lowercase hex digits, like a real project id
    region: str


def default_projects(seed: int, count: int = 4) -> tuple[SimProject, ...]:
    """``count`` projects whose ids are derived from ``seed``: stable across processes."""
    projects = []
    for k in range(count):
        digest = hashlib.blake2b(f"drs-sim-project/{seed}/{k}".encode(), digest_size=16)
        projects.append(SimProject(digest.hexdigest(), REGIONS[k % len(REGIONS)]))
    return tuple(projects)


@dataclass(frozen=True)
class WorldSettings:
    """Everything a world is derived from. Equal settings give equal worlds.

    All ``*_s`` durations are world seconds; they are divided by ``speed`` when
    mapped to wall time, so speed 60 plays an hour of world time in a minute.

    ``projects`` left empty means "four projects derived from the seed"; it is
    filled in at construction, so ``dataclasses.replace(settings, seed=...)``
    keeps the old projects (pass ``projects=()`` too to re-derive them).
    """

    seed: int = 42
    projects: tuple[SimProject, ...] = ()
    domains: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_DOMAINS
    arrival_interval_s: float = 600.0
    retention_s: float = 2 * 86400.0
    vanish_fraction: float = 0.03
    speed: float = 1.0
    epoch_ms_fraction: float = 0.2
    legacy_fraction: float = 0.01
    anchor: float = ANCHOR_2026
    # False: no generated jobs at all, only those a test adds.
    streaming: bool = True
    # Batch creations: this share of stream jobs is created in the same second as the
    # job before them (exactly at its create_time), so consecutive jobs tie on the
    # served create_time. 0 keeps every create_time distinct. See stream.py.
    tie_share: float = 0.0
    # The server's clock runs this many seconds ahead of the clock the world is given
    # (negative: behind), for everything it serves: listings, create_time, Date. Clock
    # seconds, not world seconds: speed does not divide it.
    clock_skew_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.projects:
            object.__setattr__(self, "projects", default_projects(self.seed))
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        for name in ("vanish_fraction", "epoch_ms_fraction", "legacy_fraction", "tie_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if not math.isfinite(self.clock_skew_s):
            raise ValueError("clock_skew_s must be a finite number of seconds")
        if self.arrival_interval_s <= 0 or self.retention_s <= 0:
            raise ValueError("arrival_interval_s and retention_s must be positive")
        if not self.domains or any(not users for _, users in self.domains):
            raise ValueError("domains needs at least one tenant, each with at least one user")
        for p in self.projects:
            if len(p.project_id) != 32 or p.project_id.strip("0123456789abcdef"):
                raise ValueError(f"project id must be 32 lowercase hex digits: {p.project_id!r}")

    @property
    def wall_interval_s(self) -> float:
        """Wall seconds between two stream jobs of one project."""
        return self.arrival_interval_s / self.speed

    @property
    def wall_retention_s(self) -> float:
        """Wall seconds a stream job stays listed (unless it vanishes early)."""
        return self.retention_s / self.speed

    def project_ids(self) -> tuple[str, ...]:
        return tuple(p.project_id for p in self.projects)

    def domain_of(self, project_id: str) -> tuple[str, tuple[str, ...]]:
        """The account (domain name and its IAM users) that owns ``project_id``: the
        k-th project belongs to ``domains[k % len(domains)]``. KeyError if unknown."""
        for k, project in enumerate(self.projects):
            if project.project_id == project_id:
                return self.domains[k % len(self.domains)]
        raise KeyError(f"unknown project {project_id}")
