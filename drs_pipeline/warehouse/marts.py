"""The marts: project status, status counts, durations and stuck jobs, rebuilt from the history.

Each mart is SQL in ``marts/*.sql``, rebuilt whole on every run in one
transaction, so a reader sees the previous marts or the new ones, never a mix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from drs_pipeline.warehouse.sql import named_statements, read_sql
from drs_pipeline.warehouse.store import connect, ensure_schema

# In dependency order: project_status first, the marts that read it after.
MART_FILES = (
    "project_status.sql",
    "status_counts.sql",
    "status_transitions.sql",
    "job_durations.sql",
    "stuck_jobs.sql",
)


@dataclass(frozen=True)
class Mart:
    table: str
    statement: str

    @property
    def temporary(self) -> bool:
        """A TEMP view or table that later marts read, not a mart of its own."""
        return bool(re.search(r"^CREATE (OR REPLACE )?TEMP", self.statement, re.MULTILINE))


def mart_statements() -> list[Mart]:
    return [
        Mart(name, statement)
        for file in MART_FILES
        for name, statement in named_statements(read_sql(f"marts/{file}"))
    ]


# In order; each statement that is not temporary creates the table of the catalog
# (warehouse.catalog) that it names.
MARTS = mart_statements()


def build_marts(
    database: Path,
    *,
    stuck_thresholds_s: Mapping[str, float],
    as_of: datetime,
    configured_projects: Mapping[str, str],
    freshness_minutes: float,
    lock_timeout_s: float = 30.0,
) -> dict[str, int]:
    """Rebuild every mart; returns the row count of each.

    ``configured_projects`` maps each project of the settings to its region: the
    marts of what is present now cover these only. A project without an ok sync
    finished within ``freshness_minutes`` of ``as_of`` is stale.
    """
    thresholds = pd.DataFrame(
        {
            "status": pd.Series(list(stuck_thresholds_s), dtype="str"),
            "threshold_s": pd.Series(list(stuck_thresholds_s.values()), dtype="float64"),
        }
    )
    configured = pd.DataFrame(
        {
            "project_id": pd.Series(list(configured_projects), dtype="str"),
            "region": pd.Series(list(configured_projects.values()), dtype="str"),
        }
    )
    params: dict[str, object] = {"as_of": as_of, "freshness_s": freshness_minutes * 60}
    counts: dict[str, int] = {}
    with connect(database, lock_timeout_s=lock_timeout_s) as con:
        ensure_schema(con)
        con.register("stuck_thresholds", thresholds)
        con.register("configured_projects", configured)
        con.execute("BEGIN TRANSACTION")
        try:
            for mart in MARTS:
                # DuckDB refuses parameters a statement does not name.
                used = {k: v for k, v in params.items() if f"${k}" in mart.statement}
                con.execute(mart.statement, used).fetchall()
                if mart.temporary:
                    continue
                # Table names come from our own SQL files, never from input.
                sql = f"SELECT count(*) FROM drs.{mart.table}"  # noqa: S608
                counts[mart.table] = int(con.execute(sql).fetchall()[0][0])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return counts
