"""Alerts in the history database: raising them once each, and what each webhook has
not accepted yet. The SQL is ``warehouse/alerts.sql``; docs/alerts.md says what each
kind means and when it is raised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from drs_pipeline.warehouse.sql import named_statements, read_sql

STATEMENTS = dict(named_statements(read_sql("alerts.sql")))
# In order, in one transaction: a baseline for each newly watched project, then the
# occurrences not raised before, then their deliveries queued.
RAISE_STEPS = ("new_baselines", "alert_candidates", "raised", "insert_raised", "queue_deliveries")


@dataclass(frozen=True)
class Alert:
    """One row of ``drs.alerts`` as a webhook receives it."""

    alert_id: str
    kind: str
    project_id: str
    region: str | None
    async_job_id: str | None
    domain_name: str | None
    user_name: str | None
    status: str | None
    since: datetime
    message: str


def raise_alerts(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime,
    freshness_minutes: float,
    routes: Mapping[str, Sequence[str]],
) -> dict[str, int]:
    """Raise every occurrence not raised before, and queue each for the webhooks that
    ``routes`` (webhook name: kinds) send its kind to. Returns the new alerts per kind."""
    pairs = [(webhook, kind) for webhook, kinds in routes.items() for kind in kinds]
    con.register(
        "alert_routes",
        pd.DataFrame(
            {
                "webhook": pd.Series([w for w, _ in pairs], dtype="str"),
                "kind": pd.Series([k for _, k in pairs], dtype="str"),
            }
        ),
    )
    params: dict[str, object] = {"now": now, "freshness_s": freshness_minutes * 60}
    con.execute("BEGIN TRANSACTION")
    try:
        for step in RAISE_STEPS:
            _execute(con, STATEMENTS[step], params)
        raised = con.execute("SELECT kind, count(*) FROM raised GROUP BY kind").fetchall()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("alert_routes")
    return {str(kind): int(count) for kind, count in raised}


def pending_alerts(con: duckdb.DuckDBPyConnection, webhook: str) -> list[Alert]:
    """What ``webhook`` has not accepted yet, oldest first."""
    rows = _execute(con, STATEMENTS["pending"], {"webhook": webhook}).fetchall()
    return [Alert(*row) for row in rows]


def record_attempt(
    con: duckdb.DuckDBPyConnection,
    webhook: str,
    alerts: Sequence[Alert],
    *,
    at: datetime,
    error: str | None,
) -> None:
    """One POST of ``alerts`` to ``webhook``: accepted (``error`` None) or not."""
    sent = pd.DataFrame({"alert_id": pd.Series([a.alert_id for a in alerts], dtype="str")})
    con.register("sent", sent)
    try:
        statement = STATEMENTS["record_delivered" if error is None else "record_failed"]
        _execute(con, statement, {"webhook": webhook, "at": at, "error": error})
    finally:
        con.unregister("sent")


def pending_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Alerts each webhook has not accepted yet, by webhook name."""
    return {str(w): int(n) for w, n in con.execute(STATEMENTS["pending_counts"]).fetchall()}


def _execute(
    con: duckdb.DuckDBPyConnection, statement: str, params: Mapping[str, object]
) -> duckdb.DuckDBPyConnection:
    # DuckDB refuses parameters a statement does not name.
    return con.execute(statement, {k: v for k, v in params.items() if f"${k}" in statement})
