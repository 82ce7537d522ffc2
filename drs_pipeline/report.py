"""What a sync did and what the history holds, as tables for people.

Used by the CLI (terminal tables) and by the Dagster asset (markdown metadata).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from drs_pipeline.sync import SyncReport
from drs_pipeline.warehouse.store import connect

OUTCOME_COLUMNS = [
    "project_id",
    "region",
    "outcome",
    "pages",
    "jobs",
    "new",
    "changed",
    "gone",
    "rejected",
    "error",
]

JOBS_BY_STATUS_SQL = """
SELECT domain_name, user_name, status, count(*) AS jobs
FROM drs.async_jobs
WHERE NOT is_gone
GROUP BY ALL
ORDER BY domain_name, user_name, status
"""


def rounded(frame: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Floats rounded for reading; other columns untouched."""
    floats = frame.select_dtypes("float").columns
    return frame.assign(**{column: frame[column].round(digits) for column in floats})


def read_table(database: Path, sql: str) -> pd.DataFrame:
    with connect(database, read_only=True) as con:
        return con.execute(sql).df()


def outcome_frame(report: SyncReport) -> pd.DataFrame:
    rows = [
        [
            p.run.project_id,
            p.region,
            p.run.outcome,
            p.run.pages,
            p.run.jobs_seen,
            p.run.new_jobs,
            p.run.changed_jobs,
            p.run.gone_jobs,
            p.run.rejected_records,
            p.run.error or "",
        ]
        for p in report.projects
    ]
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


def outcome_table_markdown(report: SyncReport) -> str:
    return str(outcome_frame(report).to_markdown(index=False))


def jobs_by_status(database: Path) -> pd.DataFrame:
    """Jobs present now, by tenant, user and status."""
    return read_table(database, JOBS_BY_STATUS_SQL)


def status_preview_markdown(database: Path, limit: int = 30) -> str:
    frame = jobs_by_status(database)
    text = str(frame.head(limit).to_markdown(index=False))
    if len(frame) > limit:
        text += f"\n\n({len(frame) - limit} more rows)"
    return text


def mart_preview_markdown(database: Path, table: str, limit: int = 30) -> str:
    """The first rows of a mart, for Dagster metadata."""
    with connect(database, read_only=True) as con:
        # The table name comes from our own list of marts, never from input.
        frame = con.execute(f"SELECT * FROM drs.{table} LIMIT {limit + 1}").df()  # noqa: S608
    text = str(rounded(frame.head(limit)).to_markdown(index=False))
    return text + ("\n\n(more rows)" if len(frame) > limit else "")
