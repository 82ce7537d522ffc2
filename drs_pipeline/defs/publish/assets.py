"""The read-only copy readers open, replaced atomically after each run."""

from datetime import UTC, datetime

import dagster as dg

from drs_pipeline.defs.resources import HistoryDatabaseResource
from drs_pipeline.defs.specs import OWNERS, database_metadata, table_key, tags
from drs_pipeline.warehouse.catalog import MARTS
from drs_pipeline.warehouse.publish import publish


@dg.asset(
    key=dg.AssetKey(["drs", "published_snapshot"]),
    group_name="publish",
    kinds={"duckdb"},
    pool="duckdb",
    # After the marts, hence after the history passed its blocking invariant
    # check. Not after every_project_synced_ok: one failing project must not keep
    # readers from what the others landed (drs.sync_runs in the copy says who failed).
    deps=[table_key(table) for table in MARTS],
    owners=OWNERS,
    tags=tags("publish"),
    description="A consistent read-only copy of the whole database for notebooks and SQL "
    "users (DRS_PUBLISHED_PATH), swapped in atomically; drs.publication says when.",
)
def published_snapshot(history_db: HistoryDatabaseResource) -> dg.MaterializeResult[None]:
    publication = publish(
        history_db.resolved_path(),
        history_db.resolved_published_path(),
        published_at=datetime.now(UTC),
        lock_timeout_s=history_db.lock_timeout_s,
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(publication.path)),
            **database_metadata(history_db.resolved_path()),
            "published_at": publication.published_at.isoformat(),
            "sync_id": publication.sync_id or "",
            "bytes": publication.bytes,
            "copied_as": publication.copied_as,
        }
    )
