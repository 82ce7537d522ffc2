"""The alerts step in the real job, run in process as the schedule and the command line
run it: after the marts, even when a project failed the run, and never failing it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.drs.statuses import VALIDATE_FAILED

from .helpers import Simulator, write_config
from .receiver import Receiver
from .test_alerts import HOOK_TOKEN, OWNER, refuse

DELIVERIES = dg.AssetKey(["drs", "alert_deliveries"])
ALERTS = dg.AssetKey(["drs", "alerts"])


class Runs:
    """Runs of drs_pipeline_job on one instance, so that their event logs can be read."""

    def __init__(self, instance: dg.DagsterInstance, config: Path, database: Path) -> None:
        definitions = definitions_with_resources(
            {
                "drs_api": DrsApiResource(config_path=str(config)),
                "history_db": HistoryDatabaseResource(path=str(database), lock_timeout_s=2),
            }
        )
        self.definitions = definitions
        self.instance = instance
        self.results: list[dg.ExecuteInProcessResult] = []

    def run(self) -> dg.ExecuteInProcessResult:
        result = execute_pipeline(self.definitions, instance=self.instance, raise_on_error=False)
        self.results.append(result)
        return result

    def messages(self, result: dg.ExecuteInProcessResult, step: str) -> list[tuple[str, str]]:
        """The step's own log lines: (level, message)."""
        return [
            (_level(e.level), e.user_message)
            for e in self.instance.all_logs(result.run_id)
            if e.step_key == step and e.dagster_event is None
        ]

    def event_log_text(self) -> str:
        return "\n".join(
            dg.serialize_value(e)
            for result in self.results
            for e in self.instance.all_logs(result.run_id)
        )


def _level(level: int | str) -> str:
    return logging.getLevelName(level) if isinstance(level, int) else level


def metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, object]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def step_succeeded(result: dg.ExecuteInProcessResult, step: str) -> bool:
    return any(e.step_key == step for e in result.get_step_success_events())


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_the_job_raises_and_posts_alerts_even_when_a_project_fails_the_run(
    simulator: Simulator,
    tmp_path: Path,
    database: Path,
    receiver: Receiver,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = simulator.project_ids[0]
    monkeypatch.setenv("DRS_AUTH_TOKEN", simulator.token)
    monkeypatch.setenv("DRS_ALERT_WEBHOOK", receiver.url(f"/generic/hook/{HOOK_TOKEN}"))
    config = write_config(
        tmp_path / "drs.yaml",
        simulator,
        [project],
        alerts="{webhooks: [{name: ops-chat, url_env: DRS_ALERT_WEBHOOK}]}",
    )
    runs = Runs(instance, config, database)

    baseline = runs.run()
    assert baseline.success
    assert metadata(baseline, ALERTS)["raised"] == 0
    assert metadata(baseline, DELIVERIES)["webhooks"] == (
        "| webhook   | format   |   sent | outcome         | error   |   pending |\n"
        "|:----------|:---------|-------:|:----------------|:--------|----------:|\n"
        "| ops-chat  | generic  |      0 | nothing to send |         |         0 |"
    )

    job = simulator.world.add_job(project, status=VALIDATE_FAILED, **OWNER).async_job_id
    raised = runs.run()
    assert raised.success
    (post,) = receiver.posts()
    assert [(a["kind"], a["async_job_id"]) for a in post.json()["alerts"]] == [
        ("validate_failed", job)
    ]
    assert metadata(raised, ALERTS)["raised_by_kind"] == (
        "| kind            |   raised |\n"
        "|:----------------|---------:|\n"
        "| validate_failed |        1 |"
    )
    assert runs.messages(raised, "drs_alerts") == [("INFO", "webhook ops-chat: delivered 1 alert")]

    # The project fails: the blocking check fails the run, the alert still goes out.
    refuse(simulator, project)
    failed = runs.run()
    assert not failed.success
    assert step_succeeded(failed, "drs_alerts")
    assert [a["kind"] for a in receiver.posts()[1].json()["alerts"]] == ["project_failed"]

    # The receiver is down: the run succeeds, the step says which webhook, and keeps it.
    receiver.down()
    runs.run()  # recovered: project_recovered is kept for later
    late = simulator.world.add_job(project, status=VALIDATE_FAILED, **OWNER).async_job_id
    down = runs.run()
    assert down.success
    assert metadata(down, DELIVERIES)["webhooks_not_delivered"] == 1
    assert metadata(down, DELIVERIES)["pending"] == 2
    assert runs.messages(down, "drs_alerts") == [
        (
            "WARNING",
            "webhook ops-chat: could not connect (ConnectError); 2 alerts kept for the next run",
        )
    ]
    receiver.up()
    back = runs.run()
    assert [(a["kind"], a["async_job_id"]) for a in receiver.posts()[2].json()["alerts"]] == [
        ("project_recovered", None),
        ("validate_failed", late),
    ]
    assert metadata(back, DELIVERIES)["pending"] == 0
    assert len(receiver.posts()) == 3

    # No URL, token or secret anywhere: event log, output, database.
    seen = runs.event_log_text() + "".join(capsys.readouterr())
    assert "ops-chat" in seen
    copy = database.with_name("history_published.duckdb")
    for secret in (HOOK_TOKEN, receiver.url("/")):
        assert secret not in seen
        assert secret.encode() not in database.read_bytes() + copy.read_bytes()
    with duckdb.connect(str(database), read_only=True) as con:
        errors = con.execute("SELECT DISTINCT last_error FROM drs.alert_deliveries").fetchall()
    assert errors == [(None,)]


def test_the_command_line_says_which_webhook_missed_its_alerts_and_still_exits_0(
    simulator: Simulator, tmp_path: Path, database: Path, receiver: Receiver
) -> None:
    from .test_cli import assert_quiet, run

    project = simulator.project_ids[0]
    config = write_config(
        tmp_path / "drs.yaml",
        simulator,
        [project],
        alerts="{webhooks: [{name: ops-chat, url_env: DRS_ALERT_WEBHOOK}]}",
    )
    env = {
        "DRS_AUTH_TOKEN": simulator.token,
        "DRS_CONFIG": str(config),
        "DRS_DUCKDB_PATH": str(database),
        "DRS_ALERT_WEBHOOK": receiver.url(f"/generic/hook/{HOOK_TOKEN}"),
    }
    assert (run(["sync"], env, tmp_path).returncode, receiver.requests) == (0, [])
    simulator.world.add_job(project, status=VALIDATE_FAILED, **OWNER)
    receiver.down()

    done = run(["sync"], env, tmp_path)

    assert done.returncode == 0
    assert_quiet(done)
    (line,) = done.stderr.splitlines()
    assert line.split(" ", 1)[1] == (
        "WARNING webhook ops-chat: could not connect (ConnectError); 1 alert kept for the next run"
    )
    assert HOOK_TOKEN not in done.stdout + done.stderr
