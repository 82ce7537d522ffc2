"""Alerts: raised from the marts after each run, each once, and posted to the
configured webhooks, one POST per webhook per run (docs/alerts.md).

``run_alerts`` is the whole step, as the Dagster asset ``drs_alerts`` runs it. A
delivery that fails is kept for the next run and reported, never raised: the
ingest and the marts stand whatever a webhook does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from drs_pipeline.alerts.delivery import DELIVERY_TIMEOUT_S, deliver
from drs_pipeline.alerts.state import (
    Alert,
    pending_alerts,
    pending_counts,
    raise_alerts,
    record_attempt,
)
from drs_pipeline.config import Settings
from drs_pipeline.warehouse.store import connect, ensure_schema

__all__ = ["DELIVERY_TIMEOUT_S", "Alert", "AlertReport", "WebhookOutcome", "run_alerts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookOutcome:
    """What one webhook got this run."""

    webhook: str
    format: str
    # Alerts in this run's POST; 0 when there was nothing to send (and no POST).
    sent: int
    # Why the POST was not accepted, naming the webhook (never its URL); None if it was.
    error: str | None = None

    @property
    def outcome(self) -> str:
        if self.sent == 0:
            return "nothing to send"
        return "delivered" if self.error is None else "not delivered"

    @property
    def line(self) -> str | None:
        """The log line, for a run that posted to the webhook."""
        if self.sent == 0:
            return None
        noun = "alert" if self.sent == 1 else "alerts"
        if self.error is None:
            return f"webhook {self.webhook}: delivered {self.sent} {noun}"
        return f"{self.error}; {self.sent} {noun} kept for the next run"


@dataclass(frozen=True)
class AlertReport:
    # New alerts of this run, per kind.
    raised: Mapping[str, int]
    outcomes: tuple[WebhookOutcome, ...]
    # Alerts each webhook has still not accepted, after this run.
    pending: Mapping[str, int]

    @property
    def failed(self) -> tuple[WebhookOutcome, ...]:
        return tuple(o for o in self.outcomes if o.error is not None)


def run_alerts(
    database: Path,
    settings: Settings,
    *,
    now: datetime,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DELIVERY_TIMEOUT_S,
    lock_timeout_s: float = 30.0,
) -> AlertReport:
    """Raise what is new in the marts, then post to each webhook what it has not
    accepted yet. The database is not held while the webhooks answer."""
    env = os.environ if env is None else env
    webhooks = settings.alerts.webhooks
    with connect(database, lock_timeout_s=lock_timeout_s) as con:
        ensure_schema(con)
        raised = raise_alerts(
            con,
            now=now,
            freshness_minutes=settings.freshness_minutes,
            routes={w.name: settings.alerts.on for w in webhooks},
        )
        batches = {w.name: pending_alerts(con, w.name) for w in webhooks}

    outcomes: list[WebhookOutcome] = []
    # Proxies from the environment, as for the DRS API; redirects are not followed.
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for webhook in webhooks:
            alerts = batches[webhook.name]
            problem = None
            if alerts:
                problem = deliver(webhook, alerts, env=env, client=client, now=now)
            error = None if problem is None else f"webhook {webhook.name}: {problem}"
            outcomes.append(WebhookOutcome(webhook.name, webhook.format, len(alerts), error))

    with connect(database, lock_timeout_s=lock_timeout_s) as con:
        for outcome in outcomes:
            if outcome.sent:
                alerts = batches[outcome.webhook]
                record_attempt(con, outcome.webhook, alerts, at=now, error=outcome.error)
        pending = pending_counts(con)
    for outcome in outcomes:
        if outcome.line is not None:
            log.log(logging.INFO if outcome.error is None else logging.WARNING, outcome.line)
    return AlertReport(raised, tuple(outcomes), pending)
