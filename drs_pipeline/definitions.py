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
from drs_pipeline.defs.marts import assets as marts_assets
from drs_pipeline.defs.marts import checks as marts_checks
from drs_pipeline.defs.publish import assets as publish_assets
from drs_pipeline.defs.watch import jobs as watch_jobs
from drs_pipeline.defs.watch import sensors as watch_sensors

# The modules holding assets and asset checks, and the watch's (its job and sensor
# are wired by watch_sensors.watch, which reads the sensor's interval from drs.yaml).
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


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.Definitions(
            assets=dg.load_assets_from_modules(list(DEFS_MODULES)),
            asset_checks=dg.load_asset_checks_from_modules(list(DEFS_MODULES)),
        ),
        resources.resources(),
        schedules.schedules(),
        watch_sensors.watch(),
    )


def definitions_with_resources(given: Mapping[str, Any]) -> dg.Definitions:
    """The same assets, checks and job with other resources (the CLI, tests)."""
    loaded = defs()
    return dg.Definitions(
        assets=loaded.assets,
        asset_checks=loaded.asset_checks,
        jobs=loaded.jobs,
        resources=dict(given),
    )
