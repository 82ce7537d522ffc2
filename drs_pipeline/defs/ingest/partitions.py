"""The ingest assets' partitions (one per configured project) and freshness policy.

Both come from the configuration when definitions load (``config.load_layout``):
the code location lists the projects of drs.yaml as partitions, and Dagster's
daemon judges the assets stale after ``freshness_minutes`` without a
materialization (docs/decisions/0011-partitions.md).
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from drs_pipeline.config import DEFAULT_FRESHNESS_MINUTES, ConfigError, ProjectLayout, load_layout

log = logging.getLogger(__name__)

# Dagster's tags for a run over a range of partitions, the one way a schedule or an
# in-process run asks for several partitions in one run (a single-run backfill).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Dagster refuses a freshness window under a minute.
MIN_FRESHNESS = timedelta(minutes=1)


@dataclass(frozen=True)
class ProjectPartitions:
    """The ingest assets' partitions, or None when the configuration could not be read
    (``problem`` says why), and their freshness policy."""

    partitions_def: dg.StaticPartitionsDefinition | None
    freshness_policy: dg.FreshnessPolicy
    problem: str | None = None


def range_tags(project_ids: Sequence[str]) -> dict[str, str]:
    """Tags for one run over ``project_ids``, consecutive partitions in their order
    (none when there are none: the assets are not partitioned)."""
    if not project_ids:
        return {}
    return {RANGE_START_TAG: project_ids[0], RANGE_END_TAG: project_ids[-1]}


def freshness_policy(minutes: float) -> dg.FreshnessPolicy:
    """Stale (failing) once ``minutes`` pass without a materialization."""
    return dg.FreshnessPolicy.time_window(
        fail_window=max(timedelta(minutes=minutes), MIN_FRESHNESS)
    )


def project_partitions(layout: ProjectLayout) -> ProjectPartitions:
    return ProjectPartitions(
        dg.StaticPartitionsDefinition(list(layout.project_ids)),
        freshness_policy(layout.freshness_minutes),
    )


def load_project_partitions(load: Callable[[], ProjectLayout] = load_layout) -> ProjectPartitions:
    """The partitions of the configuration ``load`` reads (default: drs.yaml's, as the
    code location loads). A broken file must not take the code location down: the
    assets are then not partitioned, and each run fails with the error."""
    try:
        return project_partitions(load())
    except ConfigError as exc:
        log.warning("configuration error: %s; the ingest assets are not partitioned", exc)
        return ProjectPartitions(
            None, freshness_policy(DEFAULT_FRESHNESS_MINUTES), f"configuration error: {exc}"
        )
