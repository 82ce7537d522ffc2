"""Alerts end to end: real syncs of the simulator over loopback, the real marts, and a
real webhook receiver on loopback (tests/receiver.py). Each test starts with the
sync that sets the baseline; the simulator's clock moves a minute between syncs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime
from pathlib import Path

import pytest

from drs_pipeline.alerts import AlertReport, run_alerts
from drs_pipeline.config import Settings
from drs_pipeline.drs.statuses import VALIDATE_FAILED, VALIDATE_SUCCESS, VALIDATING
from drs_pipeline.warehouse.marts import build_marts

from .helpers import Simulator, query, settings_for, sync
from .receiver import Received, Receiver

# The secret part of every webhook URL, and the signing secret: never to be seen
# anywhere but in the requests themselves.
HOOK_TOKEN = "hooktoken-5f2c0e1d9b8a47c6"
SIGNING_SECRET = "SECsigning-0a1b2c3d4e5f6789"
OWNER = {"domain_name": "tenant-a", "user_name": "user-1"}


def hooks(receiver: Receiver, **formats: str) -> dict[str, str]:
    """The environment of webhooks named after their format: each URL on the receiver,
    its path telling the format and carrying the token (dingtalk and wecom, like the
    real ones, carry it in the query)."""
    env = {"SIGNING_SECRET": SIGNING_SECRET}
    for name, format_ in formats.items():
        if format_ in ("dingtalk", "wecom"):
            path = f"/{format_}/send?access_token={HOOK_TOKEN}"
        else:
            path = f"/{format_}/hook/{HOOK_TOKEN}"
        env[f"HOOK_{name.upper()}"] = receiver.url(path)
    return env


def alerts_yaml(signed: tuple[str, ...] = (), on: str | None = None, **formats: str) -> str:
    items = [
        f"{{name: {name}, url_env: HOOK_{name.upper()}, format: {format_}"
        + (", secret_env: SIGNING_SECRET}" if name in signed else "}")
        for name, format_ in formats.items()
    ]
    return "{webhooks: [" + ", ".join(items) + "]" + (f", on: {on}" if on else "") + "}"


class Steps:
    """Syncs followed by the marts and the alerts step, as the job runs them."""

    def __init__(
        self, simulator: Simulator, settings: Settings, database: Path, env: dict[str, str]
    ) -> None:
        self.simulator, self.settings, self.database, self.env = simulator, settings, database, env

    def run(self, *, advance_s: float = 60) -> AlertReport:
        self.simulator.clock.advance(advance_s)
        sync(self.simulator, self.settings, self.database)
        build_marts(
            self.database,
            stuck_thresholds_s=self.settings.stuck_thresholds_s,
            as_of=self.simulator.now(),
            configured_projects={p.project_id: p.region for p in self.settings.projects},
            freshness_minutes=self.settings.freshness_minutes,
        )
        return run_alerts(
            self.database, self.settings, now=self.simulator.now(), env=self.env, timeout_s=2
        )

    def alerts(self) -> list[tuple[str, str | None, str | None]]:
        return [
            (kind, job, status)
            for kind, job, status in query(
                self.database,
                "SELECT kind, async_job_id, status FROM drs.alerts ORDER BY raised_at, since",
            )
        ]


def steps_for(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    env: dict[str, str],
    alerts: str,
    projects: list[str] | None = None,
    **options: object,
) -> Steps:
    settings = settings_for(
        simulator, tmp_path, projects or simulator.project_ids[:1], alerts=alerts, **options
    )
    return Steps(simulator, settings, database, env)


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def refuse(simulator: Simulator, project_id: str) -> None:
    from drs_pipeline.simulator import ScriptedFault

    simulator.faults.script(
        ScriptedFault(
            status=403,
            body={"error_code": "DRS.M00261", "error_msg": "Invalid project ID."},
            project_id=project_id,
        )
    )


# -- raising -----------------------------------------------------------------------------


def test_the_first_sync_is_the_baseline_and_a_job_first_seen_failed_after_it_alerts(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    project = simulator.project_ids[0]
    world = simulator.world
    # Last year's failure, and a job validating: what the first sync finds.
    world.add_job(project, status=VALIDATE_FAILED, **OWNER)
    validating = world.add_job(project, status=VALIDATING, **OWNER).async_job_id
    env = hooks(receiver, ops="generic")
    steps = steps_for(simulator, tmp_path, database, env, alerts_yaml(ops="generic"))

    baseline = steps.run()
    assert (dict(baseline.raised), receiver.requests, steps.alerts()) == ({}, [], [])
    assert query(database, "SELECT count(*) FROM drs.alert_baselines") == [(1,)]

    # A job first seen already failed, after the baseline: one alert, one POST.
    failed = world.add_job(project, status=VALIDATE_FAILED, **OWNER).async_job_id
    report = steps.run()
    seen_at = simulator.now()
    assert dict(report.raised) == {"validate_failed": 1}
    (post,) = receiver.posts()
    assert post.path == f"/generic/hook/{HOOK_TOKEN}"
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {
        "source": "drs_pipeline",
        "alerts": [
            {
                "kind": "validate_failed",
                "project_id": project,
                "region": "cn-south-2",
                "async_job_id": failed,
                "domain_name": "tenant-a",
                "user_name": "user-1",
                "status": "ASYNC_JOB_VALIDATE_FAILED",
                "since": seen_at.isoformat(),
                "message": f"job {failed} of tenant-a/user-1 in project {project} (cn-south-2) "
                f"failed validation: ASYNC_JOB_VALIDATE_FAILED since {utc(seen_at)}",
            }
        ],
    }
    assert [(o.webhook, o.sent, o.error, o.line) for o in report.outcomes] == [
        ("ops", 1, None, "webhook ops: delivered 1 alert")
    ]

    # The job validating at the baseline fails now: its new stay alerts.
    world.set_status(project, validating, VALIDATE_FAILED)
    steps.run()
    assert steps.alerts() == [
        ("validate_failed", failed, VALIDATE_FAILED),
        ("validate_failed", validating, VALIDATE_FAILED),
    ]
    assert len(receiver.posts()) == 2


def test_each_occurrence_is_raised_once_whatever_the_runs_in_between(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    project = simulator.project_ids[0]
    world = simulator.world
    env = hooks(receiver, ops="generic")
    steps = steps_for(simulator, tmp_path, database, env, alerts_yaml(ops="generic"))
    steps.run()
    job = world.add_job(project, status=VALIDATING, **OWNER).async_job_id
    steps.run()
    world.set_status(project, job, VALIDATE_FAILED)
    first = steps.run()
    # Nothing new for five runs: nothing raised, nothing sent.
    quiet = [steps.run() for _ in range(5)]
    assert dict(first.raised) == {"validate_failed": 1}
    assert [dict(r.raised) for r in quiet] == [{}] * 5
    assert [[o.sent for o in r.outcomes] for r in quiet] == [[0]] * 5
    assert len(receiver.posts()) == 1
    # An owner change splits the interval, not the stay: still no new alert.
    world.set_owner(project, job, user_name="user-2")
    steps.run()
    # Validated again, then failed again: a second stay in the status, a second alert.
    world.set_status(project, job, VALIDATING)
    steps.run()
    world.set_status(project, job, VALIDATE_FAILED)
    steps.run()
    steps.run()
    assert steps.alerts() == [
        ("validate_failed", job, VALIDATE_FAILED),
        ("validate_failed", job, VALIDATE_FAILED),
    ]
    assert [len(p.json()["alerts"]) for p in receiver.posts()] == [1, 1]
    assert query(database, "SELECT count(DISTINCT alert_id), count(*) FROM drs.alerts") == [(2, 2)]


def test_a_job_stuck_past_its_threshold_alerts_once_per_stay(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    project = simulator.project_ids[0]
    world = simulator.world
    env = hooks(receiver, ops="generic")
    steps = steps_for(
        simulator,
        tmp_path,
        database,
        env,
        alerts_yaml(ops="generic", on="[stuck]"),
        stuck_after_minutes="{ASYNC_JOB_VALIDATING: 5}",
    )
    steps.run()
    job = world.add_job(project, status=VALIDATING, **OWNER).async_job_id
    steps.run()
    entered = simulator.now()
    for _ in range(5):
        steps.run()  # 5 minutes in the status: not past the threshold yet
    assert steps.alerts() == []
    steps.run(advance_s=30)  # 5.5 minutes
    for _ in range(3):
        steps.run()
    assert steps.alerts() == [("stuck", job, VALIDATING)]
    ((alert,),) = [p.json()["alerts"] for p in receiver.posts()]
    assert alert["since"] == entered.isoformat()
    assert alert["message"] == (
        f"job {job} of tenant-a/user-1 in project {project} (cn-south-2) is stuck: "
        f"ASYNC_JOB_VALIDATING for 6 min (threshold 5 min), since {utc(entered)}"
    )
    # Out of the status and back in it: a new stay, stuck again later, alerted again.
    world.set_status(project, job, VALIDATE_SUCCESS)
    steps.run()
    world.set_status(project, job, VALIDATING)
    for _ in range(7):
        steps.run()
    assert steps.alerts() == [("stuck", job, VALIDATING)] * 2


def test_a_project_failing_going_stale_and_recovering_alerts_once_per_spell(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    good, flaky = simulator.project_ids[:2]
    env = hooks(receiver, ops="generic")
    steps = steps_for(
        simulator, tmp_path, database, env, alerts_yaml(ops="generic"), projects=[good, flaky]
    )
    steps.run()
    last_ok = simulator.now()
    refuse(simulator, flaky)
    steps.run()
    failed_at = simulator.now()
    refuse(simulator, flaky)
    steps.run()
    refuse(simulator, flaky)
    steps.run(advance_s=15 * 60)  # no ok sync for more than freshness_minutes
    refuse(simulator, flaky)
    steps.run()
    steps.run()
    recovered_at = simulator.now()
    steps.run()
    assert [(a["kind"], a["status"]) for p in receiver.posts() for a in p.json()["alerts"]] == [
        ("project_failed", "failed"),
        ("stale", None),
        ("project_recovered", "ok"),
    ]
    failure, stale, recovery = [p.json()["alerts"][0] for p in receiver.posts()]
    error = query(
        database,
        "SELECT error FROM drs.sync_runs WHERE project_id = ? ORDER BY started_at LIMIT 1 OFFSET 1",
        [flaky],
    )[0][0]
    assert failure == {
        "kind": "project_failed",
        "project_id": flaky,
        "region": "cn-south-2",
        "async_job_id": None,
        "domain_name": None,
        "user_name": None,
        "status": "failed",
        "since": query(
            database,
            "SELECT finished_at FROM drs.sync_runs WHERE project_id = ? ORDER BY started_at "
            "LIMIT 1 OFFSET 1",
            [flaky],
        )[0][0].isoformat(),
        "message": f"project {flaky} (cn-south-2) sync failed at {utc(failed_at)}: {error}",
    }
    assert "DRS.M00261" in failure["message"]
    assert (
        stale["since"]
        == query(
            database,
            "SELECT finished_at FROM drs.sync_runs WHERE project_id = ? "
            "ORDER BY started_at LIMIT 1",
            [flaky],
        )[0][0].isoformat()
    )
    assert stale["message"] == (
        f"project {flaky} (cn-south-2) is stale: no ok sync since {utc(last_ok)} "
        "(freshness_minutes 15)"
    )
    assert recovery["message"] == (
        f"project {flaky} (cn-south-2) synced ok again at {utc(recovered_at)}, "
        f"after failing since {utc(failed_at)}"
    )
    # A new failing spell: alerted again.
    refuse(simulator, flaky)
    steps.run()
    assert [k for k, _, _ in steps.alerts()][-1] == "project_failed"
    assert len(steps.alerts()) == 4


def test_a_project_first_failing_after_the_upgrade_only_alerts_a_spell_that_began_after(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    """A history written before alerts existed: its past spells raise nothing, and a
    spell under way when alerts began raises neither its failure nor its recovery."""
    project = simulator.project_ids[0]
    settings = settings_for(simulator, tmp_path, [project])
    sync(simulator, settings, database)
    simulator.clock.advance(60)
    simulator.world.add_job(project, status=VALIDATE_FAILED, **OWNER)
    sync(simulator, settings, database)  # a job failed, before alerts existed
    simulator.clock.advance(60)
    refuse(simulator, project)
    sync(simulator, settings, database)  # failing when the alerts arrive
    env = hooks(receiver, ops="generic")
    steps = steps_for(simulator, tmp_path, database, env, alerts_yaml(ops="generic"))
    refuse(simulator, project)
    steps.run()  # the upgrade's first run: the baseline
    steps.run()  # recovered: its failure was before the baseline
    assert (steps.alerts(), receiver.requests) == ([], [])
    refuse(simulator, project)
    steps.run()
    assert steps.alerts() == [("project_failed", None, "failed")]


def test_on_chooses_the_kinds_sent_but_every_kind_is_raised(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    project = simulator.project_ids[0]
    env = hooks(receiver, ops="generic")
    steps = steps_for(
        simulator, tmp_path, database, env, alerts_yaml(ops="generic", on="[project_failed]")
    )
    steps.run()
    simulator.world.add_job(project, status=VALIDATE_FAILED, **OWNER)
    report = steps.run()
    assert dict(report.raised) == {"validate_failed": 1}
    assert (receiver.requests, query(database, "SELECT count(*) FROM drs.alert_deliveries")) == (
        [],
        [(0,)],
    )


# -- delivery -----------------------------------------------------------------------------


def first_alert(steps: Steps, simulator: Simulator) -> tuple[str, datetime]:
    """The baseline, then one job first seen failed: (its id, when)."""
    steps.run()
    job = simulator.world.add_job(
        simulator.project_ids[0], status=VALIDATE_FAILED, **OWNER
    ).async_job_id
    steps.run()
    return job, simulator.now()


def test_each_format_posts_its_tools_shape_signed_where_the_tool_signs(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    formats = {
        "ops": "generic",
        "team": "slack",
        "lark": "feishu",
        "ding": "dingtalk",
        "wework": "wecom",
    }
    env = hooks(receiver, **formats)
    steps = steps_for(
        simulator, tmp_path, database, env, alerts_yaml(signed=("lark", "ding"), **formats)
    )
    project = simulator.project_ids[0]
    job, at = first_alert(steps, simulator)
    message = (
        f"job {job} of tenant-a/user-1 in project {project} (cn-south-2) failed validation: "
        f"ASYNC_JOB_VALIDATE_FAILED since {utc(at)}"
    )
    title = "drs_pipeline: 1 new alert (1 validate_failed)"
    posts = {r.path.split("/")[1]: r for r in receiver.requests}
    assert sorted(posts) == ["dingtalk", "feishu", "generic", "slack", "wecom"]
    assert posts["generic"].json()["alerts"][0]["message"] == message

    assert posts["slack"].json() == {
        "text": title,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{title}*\n• [validate_failed] {message}"},
            }
        ],
    }

    lark = posts["feishu"].json()
    assert lark == {
        "timestamp": lark["timestamp"],
        "sign": lark["sign"],
        "msg_type": "text",
        "content": {"text": f"{title}\n[validate_failed] {message}"},
    }
    # Feishu: HMAC-SHA256 keyed by "timestamp\nsecret" over nothing, base64; seconds.
    key = f"{lark['timestamp']}\n{SIGNING_SECRET}".encode()
    assert lark["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert lark["timestamp"] == str(int(at.timestamp()))

    ding = posts["dingtalk"]
    assert ding.json() == {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": f"#### {title}\n\n- [validate_failed] {message}"},
    }
    # DingTalk: HMAC-SHA256 keyed by the secret over "timestamp\nsecret", base64, in the
    # query beside the access token; milliseconds.
    assert set(ding.query) == {"access_token", "timestamp", "sign"}
    assert ding.query["access_token"] == HOOK_TOKEN
    assert ding.query["timestamp"] == str(int(at.timestamp() * 1000))
    digest = hmac.new(
        SIGNING_SECRET.encode(),
        f"{ding.query['timestamp']}\n{SIGNING_SECRET}".encode(),
        hashlib.sha256,
    ).digest()
    assert ding.query["sign"] == base64.b64encode(digest).decode()

    assert posts["wecom"].json() == {
        "msgtype": "markdown",
        "markdown": {"content": f"**{title}**\n> [validate_failed] {message}"},
    }
    assert posts["wecom"].query == {"access_token": HOOK_TOKEN}


def test_a_long_batch_is_summed_up_in_a_chat_and_sent_whole_to_generic(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    env = hooks(receiver, ops="generic", wework="wecom")
    steps = steps_for(
        simulator, tmp_path, database, env, alerts_yaml(ops="generic", wework="wecom")
    )
    steps.run()
    for _ in range(30):
        simulator.world.add_job(simulator.project_ids[0], status=VALIDATE_FAILED, **OWNER)
    steps.run()
    assert len(receiver.posts("/generic")[0].json()["alerts"]) == 30
    content = receiver.posts("/wecom")[0].json()["markdown"]["content"]
    lines = content.splitlines()
    assert lines[0] == "**drs_pipeline: 30 new alerts (30 validate_failed)**"
    assert lines[-1] == f"> ... and {30 - (len(lines) - 2)} more (drs.alerts)"
    assert len(content.encode()) <= 4096
    assert query(
        database, "SELECT count(*) FROM drs.alert_deliveries WHERE delivered_at IS NULL"
    ) == [(0,)]


def test_a_receiver_down_then_up_gets_every_alert_once_late(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    env = hooks(receiver, ops="generic")
    steps = steps_for(simulator, tmp_path, database, env, alerts_yaml(ops="generic"))
    steps.run()
    receiver.down()
    project = simulator.project_ids[0]
    first = simulator.world.add_job(project, status=VALIDATE_FAILED, **OWNER).async_job_id
    down = steps.run()
    assert [(o.sent, o.error, o.line) for o in down.outcomes] == [
        (
            1,
            "webhook ops: could not connect (ConnectError)",
            "webhook ops: could not connect (ConnectError); 1 alert kept for the next run",
        )
    ]
    assert dict(down.pending) == {"ops": 1}
    second = simulator.world.add_job(project, status=VALIDATE_FAILED, **OWNER).async_job_id
    steps.run()
    assert query(
        database,
        "SELECT a.async_job_id, d.attempts, d.delivered_at IS NULL, d.last_error "
        "FROM drs.alert_deliveries AS d JOIN drs.alerts AS a USING (alert_id) ORDER BY 1",
    ) == sorted(
        [
            (first, 2, True, "webhook ops: could not connect (ConnectError)"),
            (second, 1, True, "webhook ops: could not connect (ConnectError)"),
        ]
    )

    receiver.up()
    late = steps.run()
    (post,) = receiver.posts()
    assert [a["async_job_id"] for a in post.json()["alerts"]] == [first, second]
    assert [o.line for o in late.outcomes] == ["webhook ops: delivered 2 alerts"]
    assert dict(late.pending) == {}
    steps.run()
    steps.run()
    assert len(receiver.posts()) == 1
    assert query(
        database,
        "SELECT count(*), bool_and(delivered_at IS NOT NULL), bool_and(last_error IS NULL) "
        "FROM drs.alert_deliveries",
    ) == [(2, True, True)]


@pytest.mark.parametrize(
    ("format_", "status", "body", "error"),
    [
        ("generic", 500, "upstream broke", "HTTP 500: upstream broke"),
        ("slack", 404, "no_service", "HTTP 404: no_service"),
        (
            "feishu",
            200,
            '{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}',
            "feishu code 19021: sign match fail or timestamp is not within one hour",
        ),
        (
            "dingtalk",
            200,
            '{"errcode":310000,"errmsg":"sign not match"}',
            "dingtalk code 310000: sign not match",
        ),
        (
            "wecom",
            200,
            '{"errcode":93000,"errmsg":"invalid webhook url"}',
            "wecom code 93000: invalid webhook url",
        ),
        ("wecom", 200, "<html>proxy</html>", "HTTP 200 without a wecom result code"),
    ],
)
def test_a_refusal_is_an_error_naming_the_webhook_and_the_alert_is_kept(
    format_: str,
    status: int,
    body: str,
    error: str,
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    receiver: Receiver,
) -> None:
    receiver.answer = lambda request: (status, body)
    env = hooks(receiver, chat=format_)
    steps = steps_for(simulator, tmp_path, database, env, alerts_yaml(chat=format_))
    first_alert(steps, simulator)
    assert query(
        database, "SELECT attempts, delivered_at, last_error FROM drs.alert_deliveries"
    ) == [(1, None, f"webhook chat: {error}")]
    from .receiver import answer_ok

    receiver.answer = answer_ok
    steps.run()
    assert query(database, "SELECT attempts, last_error FROM drs.alert_deliveries") == [(2, None)]
    assert len(receiver.requests) == 2


def test_a_missing_or_plain_http_url_is_a_failed_delivery_naming_the_variable(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    steps = steps_for(
        simulator,
        tmp_path,
        database,
        {"HOOK_REMOTE": f"http://hooks.example.com/hook/{HOOK_TOKEN}"},
        alerts_yaml(unset="generic", remote="generic"),
    )
    first_alert(steps, simulator)
    assert [o.error for o in steps.run().outcomes] == [
        "webhook unset: url_env HOOK_UNSET is not set or empty",
        "webhook remote: url_env HOOK_REMOTE holds a plain http:// URL: only loopback hosts "
        "may use http, use https",
    ]


def test_no_secret_in_any_output_the_database_or_an_error(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A receiver that answers 500 quoting the request, URL and all.
    receiver.answer = lambda request: (500, f"bad request to {request.path}?{request.query}")
    formats = {"ops": "generic", "lark": "feishu", "ding": "dingtalk"}
    env = hooks(receiver, **formats)
    steps = steps_for(
        simulator, tmp_path, database, env, alerts_yaml(signed=("lark", "ding"), **formats)
    )
    caplog.set_level("DEBUG")
    first_alert(steps, simulator)
    report = steps.run()
    receiver.down()
    steps.run()
    errors = {o.webhook: o.error for o in report.outcomes}
    assert errors["ops"] == "webhook ops: HTTP 500: bad request to ***?{}"
    assert repr(steps.settings).count("HOOK_OPS") == 1 and HOOK_TOKEN not in repr(steps.settings)
    captured = capsys.readouterr()
    seen = captured.out + captured.err + caplog.text + repr(report)
    assert "webhook ding: could not connect (ConnectError)" in caplog.text
    # httpx's own line for each request, its URL masked.
    assert 'HTTP Request: POST *** "HTTP/1.0 500 Internal Server Error"' in caplog.text
    for secret in (HOOK_TOKEN, SIGNING_SECRET, f"127.0.0.1:{receiver.port}"):
        assert secret not in seen
        assert secret.encode() not in database.read_bytes()


def test_a_project_added_later_has_its_own_baseline(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    first, added = simulator.project_ids[:2]
    world = simulator.world
    env = hooks(receiver, ops="generic")
    steps_for(simulator, tmp_path, database, env, alerts_yaml(ops="generic"), [first]).run()
    world.add_job(added, status=VALIDATE_FAILED, **OWNER)
    # Validating when the project's baseline is taken, stuck later: never alerted, as
    # its stay began before the baseline (docs/alerts.md).
    world.add_job(added, status=VALIDATING, **OWNER)
    both = steps_for(
        simulator,
        tmp_path,
        database,
        env,
        alerts_yaml(ops="generic"),
        [first, added],
        stuck_after_minutes="{ASYNC_JOB_VALIDATING: 2}",
    )
    both.run()
    assert query(database, "SELECT count(*) FROM drs.alert_baselines") == [(2,)]
    new = world.add_job(added, status=VALIDATE_FAILED, **OWNER).async_job_id
    for _ in range(4):
        both.run()
    assert both.alerts() == [("validate_failed", new, VALIDATE_FAILED)]
    assert query(database, "SELECT count(*) FROM drs.stuck_jobs") == [(1,)]


def test_a_webhook_that_does_not_answer_in_time_is_a_failed_delivery(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    def slow(request: Received) -> tuple[int, str]:
        time.sleep(3)
        return 200, "ok"

    receiver.answer = slow
    env = hooks(receiver, ops="generic")
    steps = steps_for(simulator, tmp_path, database, env, alerts_yaml(ops="generic"))
    steps.run()
    simulator.world.add_job(simulator.project_ids[0], status=VALIDATE_FAILED, **OWNER)
    report = steps.run()
    assert [o.line for o in report.outcomes] == [
        "webhook ops: timed out after 2 s; 1 alert kept for the next run"
    ]
    assert dict(report.pending) == {"ops": 1}
