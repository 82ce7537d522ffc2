"""The world the benchmark syncs, and the two moments it is looked at.

The simulator's world is a pure function of its settings and the time, so the
benchmark fixes both: its simulator process runs on a ManualClock that stands
still at ``first_sync_at`` and jumps by ``WARM_STEP_S`` between the cold and
the warm sync. Every sync and every bound then sees exactly the same pages,
however long the previous scenario took.

Why these settings:

* no early vanishers and a retention far longer than the world has existed:
  every job created so far is listed, so ``jobs_per_project`` jobs are visible
  at ``first_sync_at`` exactly, and no job leaves between the two syncs (a
  leaving job costs one by-id request each, which would turn the warm sync into
  a benchmark of those look-ups);
* a project's jobs were all created in the last 20,000 world seconds (5.6
  hours; one every 2 s at 10,000 jobs), so many are still in their lifecycle
  (validation takes minutes, a commit up to 12 hours);
* the clock then moves 250 world seconds (speed 1): about 2 % of the jobs
  change status and 1.25 % new jobs arrive (they land on the last page, so the
  warm sync makes as many requests as the cold one). Both fractions hold at
  any ``jobs_per_project``, since the span, not the interval, is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from drs_pipeline.simulator import WorldSettings
from drs_pipeline.simulator.model import ANCHOR_2026, default_projects

WORLD_SPAN_S = 20_000.0
WARM_STEP_S = 250.0
SEED = 20261128


@dataclass(frozen=True)
class BenchWorld:
    projects: int
    jobs_per_project: int
    seed: int = SEED

    @property
    def arrival_interval_s(self) -> float:
        return WORLD_SPAN_S / self.jobs_per_project

    def settings(self) -> WorldSettings:
        return WorldSettings(
            seed=self.seed,
            projects=default_projects(self.seed, self.projects),
            arrival_interval_s=self.arrival_interval_s,
            # Far beyond the world's age: nothing expires while the benchmark runs.
            retention_s=100 * (WORLD_SPAN_S + WARM_STEP_S),
            vanish_fraction=0.0,
            speed=1.0,
            anchor=ANCHOR_2026,
        )

    @property
    def first_sync_at(self) -> float:
        """The moment of the cold sync: job ``jobs_per_project - 1`` has just arrived.

        Job i is created within [i, i + 0.9) intervals after the anchor, so at
        exactly ``jobs_per_project`` intervals jobs 0 .. jobs_per_project - 1 exist.
        """
        return ANCHOR_2026 + WORLD_SPAN_S

    def jobs_cached(self) -> int:
        """Jobs the simulator keeps generated: both moments, with slack."""
        arrivals = int(WARM_STEP_S / self.arrival_interval_s) + 2
        return int(1.1 * self.projects * (self.jobs_per_project + arrivals)) + 1000

    def project_ids(self) -> tuple[str, ...]:
        return self.settings().project_ids()
