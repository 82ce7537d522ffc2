"""Asset specs for the tables of the catalog (``warehouse.catalog``), and the metadata
every table asset carries: its name, its columns, owners and tags.

drs.yaml has no owners or tags keys, so they are static here: the owner
``team:drs-pipeline``, the tags ``domain: drs`` and ``layer`` (the asset's group:
ingest, marts, publish, alerts).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from drs_pipeline.warehouse.catalog import SCHEMA, Table

OWNERS = ["team:drs-pipeline"]


def tags(layer: str) -> dict[str, str]:
    return {"domain": "drs", "layer": layer}


def table_key(table: Table) -> dg.AssetKey:
    return dg.AssetKey([SCHEMA, table.name])


def column_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=column.type,
                description=column.description,
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for column in table.columns
        ]
    )


def table_specs(
    tables: Sequence[Table],
    *,
    group_name: str,
    kinds: set[str],
    deps: Sequence[dg.AssetKey] = (),
) -> list[dg.AssetSpec]:
    """One spec per table, with its description, column schema and table name.

    Called from the decorator, never stored at module level: the defs-folder loader
    would also collect a module-level list of specs and see every key twice.
    """
    return [
        dg.AssetSpec(
            key=table_key(table),
            description=table.description,
            group_name=group_name,
            kinds=kinds,
            deps=list(deps),
            owners=OWNERS,
            tags=tags(group_name),
            metadata={
                "dagster/table_name": table.qualified_name,
                "dagster/column_schema": column_schema(table),
            },
        )
        for table in tables
    ]


def database_metadata(database: Path) -> dict[str, Any]:
    """The database file a materialization wrote, as a path the UI shows as one."""
    return {"database": dg.MetadataValue.path(str(database))}
