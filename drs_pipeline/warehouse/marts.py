"""The marts: status counts, durations and stuck jobs, rebuilt from the history.

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

MART_FILES = (
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
    lock_timeout_s: float = 30.0,
) -> dict[str, int]:
    """Rebuild every mart; returns the row count of each."""
    thresholds = pd.DataFrame(
        {
            "status": pd.Series(list(stuck_thresholds_s), dtype="str"),
            "threshold_s": pd.Series(list(stuck_thresholds_s.values()), dtype="float64"),
        }
    )
    counts: dict[str, int] = {}
    with connect(database, lock_timeout_s=lock_timeout_s) as con:
        ensure_schema(con)
        con.register("stuck_thresholds", thresholds)
        con.execute("BEGIN TRANSACTION")
        try:
            for mart in MARTS:
                params = {"as_of": as_of} if "$as_of" in mart.statement else {}
                con.execute(mart.statement, params).fetchall()
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
