"""The named queries of ``queries.sql``: what the command line, the report and the
asset checks read from the history, each on a connection the caller opened."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pandas as pd

from drs_pipeline.warehouse.sql import named_statements, read_sql

QUERIES = dict(named_statements(read_sql("queries.sql")))


def read_query(
    con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, object] | None = None
) -> pd.DataFrame:
    """The rows of the query called ``name``, with its named parameters."""
    return con.execute(QUERIES[name], dict(params or {})).df()
