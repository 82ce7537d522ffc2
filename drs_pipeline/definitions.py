"""The Dagster code location: everything under ``defs/``, loaded by folder."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


def definitions_with_resources(resources: Mapping[str, Any]) -> dg.Definitions:
    """The same assets, checks and job with other resources (the CLI, tests)."""
    loaded = defs()
    return dg.Definitions(
        assets=loaded.assets,
        asset_checks=loaded.asset_checks,
        jobs=loaded.jobs,
        resources=dict(resources),
    )
