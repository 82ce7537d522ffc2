"""What a sync did and what the history holds, as tables for people.

Used by the CLI (terminal tables) and by the Dagster assets (markdown metadata).
Readers pass a connection they opened through the warehouse package.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from drs_pipeline.sync import SyncReport
from drs_pipeline.warehouse.catalog import table
from drs_pipeline.warehouse.queries import read_query

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


def rounded(frame: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Floats rounded for reading; other columns untouched."""
    floats = frame.select_dtypes("float").columns
    return frame.assign(**{column: frame[column].round(digits) for column in floats})


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


def jobs_by_status(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Jobs present now, by tenant, user and status."""
    return read_query(con, "jobs_by_status")


def status_preview_markdown(con: duckdb.DuckDBPyConnection, limit: int = 30) -> str:
    frame = jobs_by_status(con)
    text = str(frame.head(limit).to_markdown(index=False))
    if len(frame) > limit:
        text += f"\n\n({len(frame) - limit} more rows)"
    return text


def status_previews_by_project(con: duckdb.DuckDBPyConnection, limit: int = 30) -> dict[str, str]:
    """``status_preview_markdown`` for each project, by project id."""
    frame = read_query(con, "jobs_by_project_and_status")
    previews: dict[str, str] = {}
    for project_id, rows in frame.groupby("project_id", sort=False):
        rows = rows.drop(columns="project_id")
        text = str(rows.head(limit).to_markdown(index=False))
        if len(rows) > limit:
            text += f"\n\n({len(rows) - limit} more rows)"
        previews[str(project_id)] = text
    return previews


def mart_preview_markdown(con: duckdb.DuckDBPyConnection, name: str, limit: int = 30) -> str:
    """The first rows of a mart, for Dagster metadata."""
    # The name must be a table of the catalog: never input in the SQL text.
    qualified = table(name).qualified_name
    frame = con.execute(f"SELECT * FROM {qualified} LIMIT {int(limit) + 1}").df()  # noqa: S608
    text = str(rounded(frame.head(limit)).to_markdown(index=False))
    return text + ("\n\n(more rows)" if len(frame) > limit else "")
