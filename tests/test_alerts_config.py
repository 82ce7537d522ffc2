"""drs.yaml's ``alerts`` key: its contract (docs/alerts.md), defaults, and errors that
name the key. URLs and secrets stay in the environment: Settings holds their names."""

from __future__ import annotations

import pytest
import yaml

from drs_pipeline.config import (
    ALERT_KINDS,
    AlertSettings,
    ConfigError,
    WebhookSettings,
    parse_settings,
)

PROJECT = "projects: [{project_id: '" + "a" * 32 + "', region: cn-south-2}]\n"
ENV = {
    "DRS_AUTH_TOKEN": "t0k3n",
    "DRS_ALERT_WEBHOOK": "https://open.feishu.cn/open-apis/bot/v2/hook/0f3c9e2a-secret",
    "DRS_ALERT_SECRET": "signing-secret-value",
}


def parse(text: str) -> AlertSettings:
    return parse_settings(yaml.safe_load(PROJECT + text), "drs.yaml", ENV).alerts


def test_the_issue_s_example_parses_with_its_unquoted_on_key() -> None:
    alerts = parse(
        """
alerts:
  webhooks:
    - name: ops-chat                 # required, unique
      url_env: DRS_ALERT_WEBHOOK     # env var holding the URL (chat webhook URLs carry a secret)
      format: feishu                 # generic | slack | feishu | dingtalk | wecom
      secret_env: DRS_ALERT_SECRET   # optional: signing secret, for feishu and dingtalk
  on: [validate_failed, stuck, project_failed, project_recovered, stale]   # default: all
"""
    )
    assert alerts == AlertSettings(
        webhooks=(WebhookSettings("ops-chat", "DRS_ALERT_WEBHOOK", "feishu", "DRS_ALERT_SECRET"),),
        on=ALERT_KINDS,
    )


def test_defaults_no_alerts_key_format_generic_and_every_kind() -> None:
    assert parse("") == AlertSettings(webhooks=(), on=ALERT_KINDS)
    alerts = parse("alerts: {webhooks: [{name: ops, url_env: DRS_ALERT_WEBHOOK}]}")
    assert alerts.webhooks == (WebhookSettings("ops", "DRS_ALERT_WEBHOOK", "generic", None),)
    assert alerts.on == ALERT_KINDS
    assert parse("alerts: {'on': []}").on == ()


def test_settings_hold_the_variables_names_never_their_values() -> None:
    settings = parse_settings(
        yaml.safe_load(
            PROJECT + "alerts: {webhooks: [{name: ops, url_env: DRS_ALERT_WEBHOOK, "
            "format: dingtalk, secret_env: DRS_ALERT_SECRET}]}"
        ),
        "drs.yaml",
        ENV,
    )
    shown = repr(settings) + str(settings)
    assert "DRS_ALERT_WEBHOOK" in shown
    assert "0f3c9e2a-secret" not in shown and "signing-secret-value" not in shown


def test_a_variable_that_is_not_set_is_not_a_configuration_error() -> None:
    # Read when the alerts are delivered: a missing URL fails that delivery, not the sync.
    alerts = parse("alerts: {webhooks: [{name: ops, url_env: NOT_SET_ANYWHERE}]}")
    assert alerts.webhooks[0].url_env == "NOT_SET_ANYWHERE"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("alerts: [ops]", "alerts", "must be a mapping of keys to values"),
        ("alerts: {hooks: []}", "alerts.hooks", "unknown key; allowed here: on, webhooks"),
        ("alerts: {webhooks: {name: ops}}", "alerts.webhooks", "must be a list of webhooks"),
        ("alerts: {webhooks: [{url_env: X}]}", "alerts.webhooks[0].name", "required"),
        (
            "alerts: {webhooks: [{name: 'ops chat', url_env: X}]}",
            "alerts.webhooks[0].name",
            "must be letters, digits, '_', '.' or '-' (at most 64), like ops-chat",
        ),
        (
            "alerts: {webhooks: [{name: ops, url_env: X}, {name: ops, url_env: Y}]}",
            "alerts.webhooks[1].name",
            "duplicate of alerts.webhooks[0]",
        ),
        (
            "alerts: {webhooks: [{name: ops}]}",
            "alerts.webhooks[0].url_env",
            "required: the variable holding the URL",
        ),
        (
            "alerts: {webhooks: [{name: ops, url_env: 'https://x'}]}",
            "alerts.webhooks[0].url_env",
            "must be an environment variable name",
        ),
        (
            "alerts: {webhooks: [{name: ops, url_env: X, format: teams}]}",
            "alerts.webhooks[0].format",
            "'teams' is not supported; use one of generic, slack, feishu, dingtalk, wecom",
        ),
        (
            "alerts: {webhooks: [{name: ops, url_env: X, format: slack, secret_env: S}]}",
            "alerts.webhooks[0].secret_env",
            "only feishu and dingtalk webhooks are signed",
        ),
        (
            "alerts: {webhooks: [{name: ops, url_env: X, token: T}]}",
            "alerts.webhooks[0].token",
            "unknown key; allowed here: format, name, secret_env, url_env",
        ),
        (
            "alerts: {on: stuck}",
            "alerts.on",
            "must be a list of alert kinds: validate_failed, stuck, project_failed, "
            "project_recovered, stale",
        ),
        (
            "alerts: {on: [stuck, failed]}",
            "alerts.on[1]",
            "'failed' is not a kind of alert; use validate_failed, stuck, project_failed, "
            "project_recovered, stale",
        ),
        ("alerts: {on: [stuck, stuck]}", "alerts.on[1]", "duplicate of alerts.on[0]"),
        ("alerts: {on: [stuck], 'on': [stale]}", "alerts.on", "given twice (on and 'on')"),
    ],
)
def test_errors_name_the_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert (caught.value.key, caught.value.problem) == (key, problem)
    assert str(caught.value) == f"drs.yaml: {key}: {problem}"


def test_the_documented_generic_payload_has_the_contract_s_fields() -> None:
    import json
    import re
    from datetime import datetime
    from pathlib import Path

    from drs_pipeline.alerts.formats import generic_body
    from drs_pipeline.alerts.state import Alert

    text = (Path(__file__).resolve().parent.parent / "docs" / "alerts.md").read_text("utf-8")
    (block,) = re.findall(r"^```json\n(.*?)^```", text, re.M | re.S)
    documented = json.loads(block)
    alert = Alert("id", "stale", "p", "r", None, None, None, None, datetime.now(), "m")
    made = generic_body([alert])
    assert list(documented) == list(made) == ["source", "alerts"]
    assert documented["source"] == made["source"]
    for example in documented["alerts"]:
        assert list(example) == list(made["alerts"][0])
        assert datetime.fromisoformat(example["since"]).utcoffset() is not None
