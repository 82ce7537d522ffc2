"""One POST to one webhook: its URL and secret read from the environment now, the
request built in its format, and the answer judged. Never raises for a delivery
that fails: it returns why, naming no URL and no secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import httpx

from drs_pipeline.alerts.formats import answer_problem, build_request, redact
from drs_pipeline.alerts.state import Alert
from drs_pipeline.config import Secret, WebhookSettings, is_loopback_host

# Seconds for the whole POST, connecting included: a webhook that hangs must not
# hold the run (nor the next webhook) for long; what it missed goes next run.
DELIVERY_TIMEOUT_S = 10.0
# The shortest part of a URL taken for a token (the chat tools' are 24 to 64
# characters; "open-apis" or "services" are not).
TOKEN_CHARS = 16
# The loggers of the HTTP stack, whose records may quote a request's URL.
HTTP_LOGGERS = ("httpx", "httpcore")


class TargetError(ValueError):
    """The environment does not hold a usable URL or secret for a webhook."""


@dataclass(frozen=True)
class Target:
    """A webhook's URL and signing secret, as read from the environment."""

    url: Secret
    secret: Secret | None

    def hidden(self) -> list[str]:
        """Every string an error must not show: the URL, its path and query, each part
        of them long enough to be a token (a path segment, a query value), and the
        secret."""
        url = self.url.reveal()
        parts = urlsplit(url)
        pieces = [url, parts.path, parts.query]
        pieces += [part for part in parts.path.split("/") if len(part) >= TOKEN_CHARS]
        pieces += [value for _, value in parse_qsl(parts.query) if len(value) >= TOKEN_CHARS]
        if self.secret is not None:
            pieces.append(self.secret.reveal())
        return pieces


def resolve_target(webhook: WebhookSettings, env: Mapping[str, str]) -> Target:
    """The webhook's URL (https, or http to a loopback host) and secret from ``env``;
    an error names the variable, never its value."""
    url = env.get(webhook.url_env, "").strip()
    if not url:
        raise TargetError(f"url_env {webhook.url_env} is not set or empty")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise TargetError(f"url_env {webhook.url_env} does not hold a valid URL") from None
    if not host or parts.scheme not in ("https", "http"):
        raise TargetError(f"url_env {webhook.url_env} does not hold an https:// URL")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise TargetError(
            f"url_env {webhook.url_env} holds a plain http:// URL: only loopback hosts may "
            "use http, use https"
        )
    secret = None
    if webhook.secret_env is not None:
        value = env.get(webhook.secret_env, "").strip()
        if not value:
            raise TargetError(f"secret_env {webhook.secret_env} is not set or empty")
        secret = Secret(value)
    return Target(Secret(url), secret)


def deliver(
    webhook: WebhookSettings,
    alerts: Sequence[Alert],
    *,
    env: Mapping[str, str],
    client: httpx.Client,
    now: datetime,
) -> str | None:
    """POST ``alerts`` to ``webhook`` once. None when it accepted them; else why not,
    in a few words that name no URL and no secret (``HTTP 500``, ``timed out``)."""
    try:
        target = resolve_target(webhook, env)
    except TargetError as exc:
        return str(exc)
    request = build_request(
        webhook.format,
        alerts,
        secret=target.secret.reveal() if target.secret else None,
        now=now,
    )
    try:
        url = httpx.URL(target.url.reveal())
    except httpx.InvalidURL:
        return f"url_env {webhook.url_env} does not hold a valid URL"
    if request.params:
        # Added to the URL's own query (dingtalk's access_token), not in its place.
        url = url.copy_merge_params(request.params)
    hidden = [*target.hidden(), str(url)]
    try:
        with masked_http_logs(hidden):
            response = client.post(url, json=request.body)
    except httpx.TimeoutException:
        return f"timed out after {client.timeout.read or DELIVERY_TIMEOUT_S:g} s"
    except httpx.HTTPError as exc:
        # The class only: an exception's text may quote the URL.
        return f"could not connect ({type(exc).__name__})"
    return answer_problem(webhook.format, response.status_code, response.text, hidden)


class _MaskingFilter(logging.Filter):
    """Masks strings in the records of a logger, leaving the records themselves."""

    def __init__(self, hide: Sequence[str]) -> None:
        super().__init__()
        self.hide = hide

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self.hide)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


@contextmanager
def masked_http_logs(hide: Sequence[str]) -> Iterator[None]:
    """While a webhook is posted, the HTTP libraries' own log records (httpx logs each
    request's URL at INFO) show ``hide`` masked, whatever logging is configured."""
    mask = _MaskingFilter(hide)
    loggers = [logging.getLogger(name) for name in HTTP_LOGGERS]
    for logger in loggers:
        logger.addFilter(mask)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(mask)
