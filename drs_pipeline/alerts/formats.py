"""What each webhook format posts, how feishu and dingtalk sign it, and how each
tool's answer says whether it accepted the message. Pure functions: no I/O.

The shapes and signing schemes followed are listed in docs/decisions/0010-alerts.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drs_pipeline.alerts.state import Alert

SOURCE = "drs_pipeline"
# A chat message lists at most this many alerts, each cut to LINE_CHARS, within
# CHAT_BUDGET_BYTES of UTF-8 (under wecom's 4096-byte markdown and slack's
# 3000-character section); the rest are counted, and are in drs.alerts.
MAX_LINES = 20
LINE_CHARS = 300
CHAT_BUDGET_BYTES = 2500


@dataclass(frozen=True)
class WebhookRequest:
    """A POST's JSON body, and what is added to the URL's query (dingtalk's signature)."""

    body: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)


def build_request(
    format_: str, alerts: Sequence[Alert], *, secret: str | None, now: datetime
) -> WebhookRequest:
    """The POST carrying ``alerts`` in ``format_``, signed with ``secret`` at ``now``
    where the format signs (feishu, dingtalk)."""
    if format_ == "generic":
        return WebhookRequest(generic_body(alerts))
    title, lines = summary(alerts)
    if format_ == "slack":
        return WebhookRequest(slack_body(title, lines))
    if format_ == "feishu":
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": "\n".join([title, *lines])}}
        if secret is not None:
            timestamp = int(now.timestamp())
            body = {"timestamp": str(timestamp), "sign": feishu_sign(timestamp, secret), **body}
        return WebhookRequest(body)
    if format_ == "dingtalk":
        text = "\n".join([f"#### {title}", "", *(f"- {line}" for line in lines)])
        markdown = {"title": title, "text": text}
        request = WebhookRequest({"msgtype": "markdown", "markdown": markdown})
        if secret is not None:
            timestamp_ms = int(now.timestamp() * 1000)
            request.params.update(
                timestamp=str(timestamp_ms), sign=dingtalk_sign(timestamp_ms, secret)
            )
        return request
    if format_ == "wecom":
        content = "\n".join([f"**{title}**", *(f"> {line}" for line in lines)])
        return WebhookRequest({"msgtype": "markdown", "markdown": {"content": content}})
    raise ValueError(f"unknown webhook format {format_!r}")


def generic_body(alerts: Sequence[Alert]) -> dict[str, Any]:
    """The contract of docs/alerts.md: every alert, fields that do not apply null."""
    return {
        "source": SOURCE,
        "alerts": [
            {
                "kind": a.kind,
                "project_id": a.project_id,
                "region": a.region,
                "async_job_id": a.async_job_id,
                "domain_name": a.domain_name,
                "user_name": a.user_name,
                "status": a.status,
                "since": a.since.isoformat(),
                "message": a.message,
            }
            for a in alerts
        ],
    }


def summary(alerts: Sequence[Alert]) -> tuple[str, list[str]]:
    """A chat message's title (how many alerts of which kinds) and its lines: one per
    alert, as many as fit, then how many more there are."""
    kinds = Counter(a.kind for a in alerts)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    title = f"{SOURCE}: {len(alerts)} new alert{'' if len(alerts) == 1 else 's'} ({counts})"
    lines: list[str] = []
    used = 0
    for alert in alerts:
        line = _cut(f"[{alert.kind}] {alert.message}", LINE_CHARS)
        size = len(line.encode("utf-8")) + 1
        if len(lines) == MAX_LINES or used + size > CHAT_BUDGET_BYTES:
            break
        lines.append(line)
        used += size
    if len(lines) < len(alerts):
        lines.append(f"... and {len(alerts) - len(lines)} more (drs.alerts)")
    return title, lines


def slack_body(title: str, lines: Sequence[str]) -> dict[str, Any]:
    """``text`` for notifications, and one mrkdwn section for the message itself."""
    text = "\n".join([f"*{_slack_escape(title)}*", *(f"• {_slack_escape(x)}" for x in lines)])
    section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    return {"text": title, "blocks": [section]}


def feishu_sign(timestamp: int, secret: str) -> str:
    """Feishu's custom bot: HMAC-SHA256 keyed by "timestamp\\nsecret" over an empty
    message, in base64; the timestamp in seconds."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's custom robot: HMAC-SHA256 keyed by the secret over
    "timestamp\\nsecret", in base64 (URL-encoded when added to the query); the
    timestamp in milliseconds."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


# The JSON field holding each tool's own result code, and its message: 0 is accepted.
TOOL_CODES = {
    "feishu": (("code", "StatusCode"), ("msg", "StatusMessage")),
    "dingtalk": (("errcode",), ("errmsg",)),
    "wecom": (("errcode",), ("errmsg",)),
}


def answer_problem(format_: str, status_code: int, text: str, hide: Iterable[str]) -> str | None:
    """Why the answer says the message was not accepted, in one short line, with every
    string of ``hide`` (the URL and its parts, the secret) masked; None if it was."""
    accepted = 200 <= status_code < 300
    problems = [] if accepted else [f"HTTP {status_code}"]
    code: object = None
    if format_ in TOOL_CODES:
        code_keys, message_keys = TOOL_CODES[format_]
        answer = _json_object(text)
        code = next((answer[k] for k in code_keys if k in answer), None)
        if code not in (None, 0):
            message = next((str(answer[k]) for k in message_keys if k in answer), "")
            problems.append(f"{format_} code {_told(code, hide)}: {_told(message, hide)}")
        elif code is None and accepted:
            problems.append(f"HTTP {status_code} without a {format_} result code")
    if not accepted and code in (None, 0) and text.strip():
        problems.append(_told(text.strip().splitlines()[0], hide))
    return _cut(": ".join(problems).rstrip(": "), 160) if problems else None


def _told(value: object, hide: Iterable[str]) -> str:
    """What the webhook said, masked before it is cut (no part of a secret survives)."""
    return _cut(redact(str(value), hide), 100)


def redact(text: str, hide: Iterable[str]) -> str:
    """``text`` with every string of ``hide`` masked, longest first."""
    for secret in sorted({s for s in hide if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _slack_escape(text: str) -> str:
    # The three characters Slack's mrkdwn reserves for links and mentions.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
