"""Authentication end to end: AK/SK signing and IAM password tokens against the
simulator's gateway and IAM over loopback HTTP, into a real DuckDB file.

Every secret here is random per test, so that finding one anywhere it must not
be (logs, Dagster events, the database) is a real leak, not a coincidence.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from drs_pipeline.config import Settings, load_settings_file
from drs_pipeline.defs.ingest.assets import build_drs_sync
from drs_pipeline.defs.ingest.partitions import load_project_partitions, range_tags
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.simulator import ScriptedFault
from drs_pipeline.simulator.gateway import AccessKey, AkSkGateway
from drs_pipeline.simulator.iam import SimIam
from drs_pipeline.sync import SyncReport, run_sync

from .helpers import QUICK_RETRY, Simulator, assert_history_invariants, query, sync

DOMAIN, USER = "acme", "reader"


@dataclass
class Accounts:
    """The simulator's gateway and IAM, and the credentials they accept."""

    gateway: AkSkGateway
    iam: SimIam
    ak: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    sk: str = field(default_factory=lambda: secrets.token_hex(20))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    # Good credentials for the environment: the defaults of every method.
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gateway.keys[self.ak] = AccessKey(self.sk)
        self.iam.add_user(DOMAIN, USER, self.password)
        self.env = {
            "HUAWEICLOUD_SDK_AK": self.ak,
            "HUAWEICLOUD_SDK_SK": self.sk,
            "HUAWEICLOUD_IAM_PASSWORD": self.password,
        }


@pytest.fixture
def accounts(simulator: Simulator) -> Iterator[Accounts]:
    gateway = AkSkGateway({}, simulator.clock)
    iam = SimIam(simulator.clock, lifetime_s=3600)
    simulator.app.gateway, simulator.app.iam = gateway, iam
    yield Accounts(gateway, iam)


def password_auth(simulator: Simulator, password_env: str = "HUAWEICLOUD_IAM_PASSWORD") -> str:
    return (
        f"{{method: password, iam_endpoint: '{simulator.url}', domain_name: {DOMAIN}, "
        f"user_name: {USER}, password_env: {password_env}}}"
    )


def configure(
    tmp_path: Path,
    simulator: Simulator,
    projects: dict[str, str | None],
    env: dict[str, str],
    *,
    auth: str | None = None,
    page_size: int = 2,
    max_concurrency: int = 8,
) -> tuple[Path, Settings]:
    """A drs.yaml of ``projects`` (id to its own auth, or None for the default)."""
    lines = ["projects:"]
    for project_id, own in projects.items():
        lines += [f"  - project_id: '{project_id}'", "    region: cn-south-2"]
        lines += [f"    endpoint: {simulator.url}"]
        if own is not None:
            lines += [f"    auth: {own}"]
    if auth is not None:
        lines += [f"auth: {auth}"]
    lines += [f"page_size: {page_size}", f"max_concurrency: {max_concurrency}"]
    path = tmp_path / "drs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, load_settings_file(path, env)


def add_jobs(simulator: Simulator, project_id: str, count: int) -> set[str]:
    now = simulator.clock.now()
    return {
        simulator.world.add_job(project_id, create_time=now - count + i).async_job_id
        for i in range(count)
    }


def landed(database: Path, project_id: str) -> set[str]:
    rows = query(
        database, "SELECT async_job_id FROM drs.async_jobs WHERE project_id = ?", [project_id]
    )
    return {r[0] for r in rows}


def results(report: SyncReport) -> dict[str, object]:
    return {r.run.project_id: r for r in report.projects}


def list_requests(simulator: Simulator, project_id: str) -> int:
    return sum(1 for r in simulator.app.stats.log if r.project_id == project_id)


def hook_clock(simulator: Simulator, action: Callable[[], None]) -> Callable[[], datetime]:
    """The sync's clock, which runs ``action`` once, as soon as the first page has
    been answered: the client reads the clock right after each response, before
    the pages that follow page 0 are sent (concurrently)."""
    done = False

    def clock() -> datetime:
        nonlocal done
        if not done and simulator.app.stats.requests >= 1:
            done = True
            action()
        return simulator.now()

    return clock


# -- AK/SK --------------------------------------------------------------------------------


def test_aksk_sync_signs_every_request(
    simulator: Simulator, accounts: Accounts, tmp_path: Path, database: Path
) -> None:
    first, second = simulator.project_ids[:2]
    expected = {first: add_jobs(simulator, first, 9), second: add_jobs(simulator, second, 4)}
    _, settings = configure(
        tmp_path, simulator, dict.fromkeys(expected), accounts.env, auth="{method: aksk}"
    )

    report = sync(simulator, settings, database)

    assert report.all_ok, [r.run.error for r in report.projects]
    for project_id, ids in expected.items():
        assert landed(database, project_id) == ids
    assert accounts.gateway.stats.accepted == simulator.app.stats.requests == report.requests
    assert not accounts.gateway.stats.rejected
    assert accounts.iam.stats.token_requests == 0
    assert_history_invariants(database)


def test_aksk_temporary_credentials_and_retries_signed_anew(
    simulator: Simulator, accounts: Accounts, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    ids = add_jobs(simulator, project_id, 6)
    sts_ak, sts_sk, token = "STS" + secrets.token_hex(6).upper(), "sts-sk", secrets.token_hex(24)
    accounts.gateway.keys[sts_ak] = AccessKey(sts_sk, security_token=token)
    env = {"TMP_AK": sts_ak, "TMP_SK": sts_sk, "TMP_TOKEN": token}
    auth = "{method: aksk, ak_env: TMP_AK, sk_env: TMP_SK, security_token_env: TMP_TOKEN}"
    _, settings = configure(tmp_path, simulator, {project_id: auth}, env)
    # Two failures, each retried: the retries are signed (and verified) again.
    simulator.faults.script(
        ScriptedFault(status=503, offset=2), ScriptedFault(status=429, offset=4)
    )

    report = sync(simulator, settings, database)

    assert report.all_ok and landed(database, project_id) == ids
    assert simulator.app.stats.by_status[503] == simulator.app.stats.by_status[429] == 1
    assert accounts.gateway.stats.accepted == simulator.app.stats.requests == 3 + 1 + 2

    # The same key without its security token is refused.
    _, bare = configure(
        tmp_path, simulator, {project_id: "{method: aksk, ak_env: TMP_AK, sk_env: TMP_SK}"}, env
    )
    result = sync(simulator, bare, database).projects[0]
    assert result.run.outcome == "failed" and result.error_code == "APIGW.0301"
    assert "x-security-token" in (result.run.error or "")


@pytest.mark.parametrize(("minutes", "ok"), [(-14, True), (14, True), (-16, False), (16, False)])
def test_the_gateway_rejects_a_date_more_than_15_minutes_off(
    simulator: Simulator,
    accounts: Accounts,
    tmp_path: Path,
    database: Path,
    minutes: int,
    ok: bool,
) -> None:
    project_id = simulator.project_ids[0]
    add_jobs(simulator, project_id, 3)
    _, settings = configure(
        tmp_path, simulator, {project_id: None}, accounts.env, auth="{method: aksk}"
    )

    def skewed() -> datetime:
        return simulator.now() + timedelta(minutes=minutes)

    report = run_sync(settings, database, retry=QUICK_RETRY, clock=skewed)

    result = report.projects[0]
    if ok:
        assert result.run.outcome == "ok"
    else:
        assert result.run.outcome == "failed" and result.error_code == "APIGW.0301"
        assert "15 minutes" in (result.run.error or "")
        assert list_requests(simulator, project_id) == 1, "a 401 is not retried"


def test_wrong_sk_and_unknown_ak_fail_clearly_and_the_others_land(
    simulator: Simulator, accounts: Accounts, tmp_path: Path, database: Path
) -> None:
    wrong_sk, unknown_ak, good = simulator.project_ids[:3]
    good_ids = add_jobs(simulator, good, 5)
    for project_id in (wrong_sk, unknown_ak):
        add_jobs(simulator, project_id, 5)
    stranger = "AKUNKNOWN" + secrets.token_hex(6).upper()
    env = {**accounts.env, "BAD_SK": secrets.token_hex(20), "STRANGER_AK": stranger}
    _, settings = configure(
        tmp_path,
        simulator,
        {
            wrong_sk: "{method: aksk, sk_env: BAD_SK}",
            unknown_ak: "{method: aksk, ak_env: STRANGER_AK}",
            good: None,
        },
        env,
        auth="{method: aksk}",
    )

    report = sync(simulator, settings, database)

    by_project = {r.run.project_id: r for r in report.projects}
    assert by_project[good].run.outcome == "ok" and landed(database, good) == good_ids
    for project_id, words in (
        (wrong_sk, "verify aksk signature fail"),
        (unknown_ak, "ak ******** does not exist"),
    ):
        result = by_project[project_id]
        error = result.run.error or ""
        assert result.run.outcome == "failed" and result.error_code == "APIGW.0301"
        assert "HTTP 401" in error and words in error
        assert result.request_id and result.request_id in error
        assert landed(database, project_id) == set()
        assert list_requests(simulator, project_id) == 1, "a 401 is not retried"
    # The gateway named the unknown AK; the client kept it out of the report.
    assert stranger not in str([r.run for r in report.projects])
    assert accounts.gateway.stats.rejected == {"signature": 1, "unknown_ak": 1}


# -- IAM password tokens ---------------------------------------------------------------------


def test_password_sync_uses_one_token_per_project_scope(
    simulator: Simulator, accounts: Accounts, tmp_path: Path, database: Path
) -> None:
    first, second = simulator.project_ids[:2]
    expected = {first: add_jobs(simulator, first, 21), second: add_jobs(simulator, second, 5)}
    _, settings = configure(
        tmp_path, simulator, dict.fromkeys(expected), accounts.env, auth=password_auth(simulator)
    )

    report = sync(simulator, settings, database)

    assert report.all_ok, [r.run.error for r in report.projects]
    for project_id, ids in expected.items():
        assert landed(database, project_id) == ids
    # 11 + 3 pages, many of them concurrent: one token per project, no more.
    assert report.requests == 11 + 3
    assert accounts.iam.stats.token_requests == accounts.iam.stats.issued == 2
    assert set(simulator.app.stats.by_status) == {200}


def test_a_token_that_comes_due_mid_sync_is_renewed_once(
    simulator: Simulator, accounts: Accounts, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    ids = add_jobs(simulator, project_id, 20)
    _, settings = configure(
        tmp_path,
        simulator,
        {project_id: password_auth(simulator)},
        accounts.env,
        max_concurrency=16,
    )
    # After page 0, an hour passes: the token (3600 s) is past its end for both sides,
    # and ten requests are about to be sent at once (nine pages and the look for more).
    clock = hook_clock(simulator, lambda: simulator.clock.advance(3600))

    report = run_sync(settings, database, retry=QUICK_RETRY, clock=clock)

    assert report.all_ok and landed(database, project_id) == ids
    assert accounts.iam.stats.token_requests == 2, "concurrent pages share one renewal"
    # Renewed before use: no request went out with the old token.
    assert simulator.app.stats.by_status == {200: 11}


def test_a_token_rejected_as_expired_is_renewed_once_and_each_page_resent_once(
    simulator: Simulator, accounts: Accounts, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    ids = add_jobs(simulator, project_id, 20)
    _, settings = configure(
        tmp_path,
        simulator,
        {project_id: password_auth(simulator)},
        accounts.env,
        max_concurrency=16,
    )
    # IAM ends the token early (as a password change does): the client still
    # believes in it, and learns otherwise from APIGW.0307 on ten requests at once
    # (the nine pages after page 0, and the look for more after a full last page).
    clock = hook_clock(simulator, accounts.iam.expire_all)

    report = run_sync(settings, database, retry=QUICK_RETRY, clock=clock)

    assert report.all_ok and landed(database, project_id) == ids
    assert accounts.iam.stats.token_requests == 2, "ten 0307s, one renewal"
    # Offsets 2..20 were in flight together with the old token: each was rejected
    # once, then resent with the new one (11 requests answered 200 in all).
    assert simulator.app.stats.by_status == {200: 11, 401: 10}
    # Resent by the auth flow, not by the retry loop (which never retries a 401).
    assert report.requests == 11


@pytest.mark.parametrize(
    ("locked", "message"),
    [(False, "The username or password is wrong."), (True, "The account is locked.")],
)
def test_wrong_password_or_locked_user_is_clear_not_retried_and_the_others_land(
    simulator: Simulator,
    accounts: Accounts,
    tmp_path: Path,
    database: Path,
    locked: bool,
    message: str,
) -> None:
    refused_a, refused_b, good = simulator.project_ids[:3]
    good_ids = add_jobs(simulator, good, 4)
    for project_id in (refused_a, refused_b):
        add_jobs(simulator, project_id, 4)
    if locked:
        accounts.iam.locked.add((DOMAIN, USER))
    env = {**accounts.env, "WRONG_PASSWORD": "not-" + accounts.password}
    password_env = "HUAWEICLOUD_IAM_PASSWORD" if locked else "WRONG_PASSWORD"
    refused_auth = password_auth(simulator, password_env)
    _, settings = configure(
        tmp_path,
        simulator,
        {refused_a: refused_auth, refused_b: refused_auth, good: "{method: aksk}"},
        env,
    )

    report = sync(simulator, settings, database)

    by_project = {r.run.project_id: r for r in report.projects}
    assert by_project[good].run.outcome == "ok" and landed(database, good) == good_ids
    for project_id in (refused_a, refused_b):
        result = by_project[project_id]
        error = result.run.error or ""
        assert result.run.outcome == "failed"
        assert f"user '{USER}' of account '{DOMAIN}'" in error and message in error
        assert f"check {password_env}" in error
        assert result.error_code == "401" and result.request_id and result.request_id in error
        assert landed(database, project_id) == set()
        assert list_requests(simulator, project_id) == 0, "the list was never asked"
        assert query(
            database,
            "SELECT outcome, error FROM drs.sync_runs WHERE project_id = ?",
            [project_id],
        ) == [("failed", error)]
    # Each try counts towards IAM's lockout: the refused password was sent once,
    # for both projects together, and never retried.
    assert accounts.iam.stats.token_requests == accounts.iam.stats.refused == 1


def test_an_unreachable_iam_is_retried_then_reported(
    simulator: Simulator, accounts: Accounts, tmp_path: Path, database: Path
) -> None:
    project_id = simulator.project_ids[0]
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = (
        f"{{method: password, iam_endpoint: 'http://127.0.0.1:{port}', "
        f"domain_name: {DOMAIN}, user_name: {USER}}}"
    )
    _, settings = configure(tmp_path, simulator, {project_id: auth}, accounts.env)

    result = sync(simulator, settings, database).projects[0]

    error = result.run.error or ""
    assert result.run.outcome == "failed" and "unreachable" in error
    assert f"after {QUICK_RETRY.max_attempts} attempts" in error
    assert list_requests(simulator, project_id) == 0


# -- no secret anywhere ---------------------------------------------------------------------


def test_no_secret_in_logs_dagster_events_or_the_database(
    simulator: Simulator,
    accounts: Accounts,
    tmp_path: Path,
    database: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed, by_password = simulator.project_ids[:2]
    wrong_password, unknown_ak = "a" * 32, "b" * 32
    for project_id in (signed, by_password):
        add_jobs(simulator, project_id, 5)
    sts_token = secrets.token_hex(24)
    accounts.gateway.keys[accounts.ak] = AccessKey(accounts.sk, security_token=sts_token)
    stranger = "AKSTRANGER" + secrets.token_hex(6).upper()
    env = {
        **accounts.env,
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": sts_token,
        "WRONG_PASSWORD": secrets.token_urlsafe(12),
        "STRANGER_AK": stranger,
        "STRANGER_SK": secrets.token_hex(20),
    }
    config, settings = configure(
        tmp_path,
        simulator,
        {
            signed: None,
            by_password: password_auth(simulator),
            wrong_password: password_auth(simulator, "WRONG_PASSWORD"),
            unknown_ak: "{method: aksk, ak_env: STRANGER_AK, sk_env: STRANGER_SK}",
        },
        env,
        auth="{method: aksk}",
    )
    caplog.set_level(logging.DEBUG)

    # A sync where a token also expires early, logged at DEBUG...
    report = run_sync(
        settings,
        database,
        retry=QUICK_RETRY,
        clock=hook_clock(simulator, accounts.iam.expire_all),
    )
    outcomes = {r.run.project_id: r.run.outcome for r in report.projects}
    assert outcomes == {
        signed: "ok",
        by_password: "ok",
        wrong_password: "failed",
        unknown_ak: "failed",
    }
    # ...then the Dagster asset, reading the same secrets from the environment.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.ephemeral()
    drs_api = DrsApiResource(config_path=str(config))
    partitions = load_project_partitions(drs_api.layout)
    assert partitions.partitions_def is not None
    result = dg.materialize(
        [build_drs_sync(partitions)],
        resources={
            "drs_api": drs_api,
            "history_db": HistoryDatabaseResource(path=str(database)),
        },
        instance=instance,
        raise_on_error=False,
        # Every project in one run, as the schedule runs it.
        tags=range_tags(partitions.partitions_def.get_partition_keys()),
    )
    assert result.success

    tokens = accounts.iam.issued_tokens()
    assert len(tokens) >= 2, "tokens were issued: the sync's and the Dagster run's"
    leaks = [*env.values(), *tokens]
    places: dict[str, str] = {
        "logs": caplog.text + "\n".join(str(r.__dict__) for r in caplog.records),
        "dagster events": "\n".join(
            [dg.serialize_value(e) for e in result.all_events]
            + [dg.serialize_value(e) for e in instance.all_logs(result.run_id)]
        ),
    }
    assert "failed" in places["dagster events"] and "ok" in places["dagster events"]
    with duckdb.connect(str(database), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
        assert len(tables) >= 4
        places["tables"] = "\n".join(
            str(con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall())
            for schema, name in tables
        )
    assert "APIGW.0301" in places["tables"], "the failures were recorded"
    files = [database, *database.parent.glob(database.name + ".wal")]
    raw = b"".join(path.read_bytes() for path in files)
    for secret in leaks:
        for where, text in places.items():
            assert secret not in text, f"a secret leaked into {where}"
        assert secret.encode() not in raw, "a secret leaked into the database file"
