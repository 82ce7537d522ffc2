"""Asset specs for tables in the ``drs`` schema, shared by the ingest and the marts."""

from collections.abc import Mapping, Sequence

import dagster as dg


def table_specs(
    tables: Mapping[str, str],
    *,
    group_name: str,
    kinds: set[str],
    deps: Sequence[dg.AssetKey] = (),
) -> list[dg.AssetSpec]:
    """One spec per ``drs.<table>`` (name -> description).

    Called from the decorator, never stored at module level: the defs-folder loader
    would also collect a module-level list of specs and see every key twice.
    """
    return [
        dg.AssetSpec(
            key=dg.AssetKey(["drs", table]),
            description=description,
            group_name=group_name,
            kinds=kinds,
            deps=list(deps),
        )
        for table, description in tables.items()
    ]
