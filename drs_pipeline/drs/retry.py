"""When to retry a DRS request, and how long to wait.

Explicit, named configuration in the manner of dlt's REST client: the loop that
uses it lives in the client and only asks this module two questions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from drs_pipeline.drs.errors import DrsApiError, DrsError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in total waiting.

    Retried: 429, 5xx, timeouts, connection errors and malformed 200 bodies.
    Never retried: other 4xx (bad token, unknown project, bad parameter) and a
    refused TLS certificate, which no amount of waiting fixes.
    """

    max_attempts: int = 6
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    # Total sleep of one request across its attempts; a Retry-After that would
    # exceed it ends the retries at once rather than sleeping in vain.
    max_total_wait_s: float = 120.0
    # Each backoff is scaled by a factor drawn from [1 - jitter, 1 + jitter], so
    # that concurrent pages hit by the same 429 do not come back in lockstep.
    jitter: float = 0.5

    def delay_before_retry(
        self, error: DrsError, attempt: int, rng: random.Random, now: datetime | None = None
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1``; honours Retry-After."""
        if isinstance(error, DrsApiError) and error.retry_after:
            hinted = retry_after_seconds(error.retry_after, now or datetime.now(UTC))
            if hinted is not None and hinted > 0:
                return hinted
        base = min(self.max_delay_s, self.initial_delay_s * 2.0 ** (attempt - 1))
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)

    def should_retry(self, error: DrsError, attempt: int, waited_s: float, delay_s: float) -> bool:
        return (
            error.retryable
            and attempt < self.max_attempts
            and waited_s + delay_s <= self.max_total_wait_s
        )


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """A Retry-After header as seconds to wait: delta-seconds or an HTTP-date.

    ``None`` when the header says nothing usable; ``0`` means "no hint" to the
    caller, who then falls back to its own backoff.
    """
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is no hint
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
