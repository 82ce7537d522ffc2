"""The Dagster code location: the modules under ``defs/``, listed.

Listed rather than found by ``dg.load_from_defs_folder``, which needs the
project's pyproject.toml above the package and so fails in an installed wheel.
A new module under ``defs/`` is added to ``DEFS_MODULES``; tests/test_dagster.py
checks that none is left out.
"""

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import dagster as dg

# Modules, not their @dg.definitions functions: a module may hold only one of those.
from drs_pipeline.defs import resources, schedules
from drs_pipeline.defs.alerts import assets as alerts_assets
from drs_pipeline.defs.ingest import assets as ingest_assets
from drs_pipeline.defs.ingest import checks as ingest_checks
from drs_pipeline.defs.ingest.partitions import (
    ProjectPartitions,
    load_project_partitions,
    range_tags,
)
from drs_pipeline.defs.marts import assets as marts_assets
from drs_pipeline.defs.marts import checks as marts_checks
from drs_pipeline.defs.publish import assets as publish_assets
from drs_pipeline.defs.resources import DrsApiResource
from drs_pipeline.defs.watch import jobs as watch_jobs
from drs_pipeline.defs.watch import sensors as watch_sensors

# The modules holding assets and asset checks, and the watch's (its job and sensor
# are wired by watch_sensors.watch, which reads the sensor's interval from drs.yaml).
# The ingest asset is built by ingest_assets.build_drs_sync: its partitions are the
# configured projects.
DEFS_MODULES: tuple[ModuleType, ...] = (
    ingest_assets,
    ingest_checks,
    marts_assets,
    marts_checks,
    publish_assets,
    alerts_assets,
    watch_jobs,
    watch_sensors,
)
PIPELINE_JOB = schedules.drs_pipeline_job.name


@dg.definitions
def defs() -> dg.Definitions:
    # The projects of drs.yaml when the code location loads: one partition each.
    return pipeline_definitions(load_project_partitions())


def pipeline_definitions(partitions: ProjectPartitions) -> dg.Definitions:
    return dg.Definitions.merge(
        dg.Definitions(
            assets=[
                ingest_assets.build_drs_sync(partitions),
                *dg.load_assets_from_modules(list(DEFS_MODULES)),
            ],
            asset_checks=dg.load_asset_checks_from_modules(list(DEFS_MODULES)),
        ),
        resources.resources(),
        schedules.schedules(partitions),
        watch_sensors.watch(),
    )


def definitions_with_resources(
    given: Mapping[str, Any], partitions: ProjectPartitions | None = None
) -> dg.Definitions:
    """The same assets, checks and job with other resources (the CLI, tests), partitioned
    by ``partitions``; by default, the projects of the given ``drs_api``'s configuration."""
    if partitions is None:
        api = given.get("drs_api")
        partitions = load_project_partitions(
            api.layout if isinstance(api, DrsApiResource) else DrsApiResource().layout
        )
    loaded = pipeline_definitions(partitions)
    return dg.Definitions(
        assets=loaded.assets,
        asset_checks=loaded.asset_checks,
        jobs=loaded.jobs,
        resources=dict(given),
    )


def execute_pipeline(definitions: dg.Definitions, **kwargs: Any) -> dg.ExecuteInProcessResult:
    """``drs_pipeline_job`` in process over every partition of ``definitions``, in one
    run as the schedule runs it; ``kwargs`` go to ``execute_in_process``."""
    job = definitions.resolve_job_def(PIPELINE_JOB)
    keys = job.partitions_def.get_partition_keys() if job.partitions_def else []
    tags = {**range_tags(keys), **kwargs.pop("tags", {})}
    return job.execute_in_process(tags=tags, **kwargs)
