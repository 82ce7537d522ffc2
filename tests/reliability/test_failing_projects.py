"""Matrix row 6: projects that fail for good (forbidden, unknown, a revoked or expired
token) among good ones, in one sync.

tests/test_sync.py shows one unknown project beside one good one, and a wrong
token for a lone project; tests/test_auth.py does the same for AK/SK and IAM
passwords. Here every kind fails at once, one of them after its first page was
fine, and each failure names its DRS error code and X-Request-Id.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from drs_pipeline.config import load_settings_file
from drs_pipeline.simulator import ScriptedFault, WorldSettings
from drs_pipeline.simulator.model import default_projects

from ..helpers import Simulator, assert_history_invariants, query, start_simulator, sync
from .helpers import add_jobs, ids


@pytest.fixture
def six_projects() -> Iterator[Simulator]:
    settings = WorldSettings(seed=5, streaming=False, projects=default_projects(5, 6))
    server, handle = start_simulator(settings)
    with server:
        yield handle


def test_projects_that_fail_for_good_fail_alone_naming_code_and_request_id(
    six_projects: Simulator, tmp_path: Path, database: Path
) -> None:
    simulator = six_projects
    good_a, good_b, forbidden, forbidden_later, revoked, expired = simulator.project_ids
    unknown = "f" * 32  # well formed, but no such project
    jobs = {project_id: add_jobs(simulator, project_id, 12) for project_id in simulator.project_ids}
    revoked_token, expired_token = secrets.token_hex(16), secrets.token_hex(16)
    simulator.app.expired_tokens.add(expired_token)  # revoked_token: never accepted
    simulator.faults.script(
        ScriptedFault(
            status=403,
            body={"error_code": "APIGW.0306", "error_msg": "Access denied."},
            project_id=forbidden,
            times=99,
        ),
        # Page 0 is fine, then the gateway refuses page 5 (say, a policy changed).
        ScriptedFault(status=403, project_id=forbidden_later, offset=5, times=99),
    )
    own_token = {revoked: "REVOKED_TOKEN", expired: "EXPIRED_TOKEN"}
    lines = ["projects:"]
    for project_id in [good_a, forbidden, unknown, forbidden_later, revoked, expired, good_b]:
        lines += [
            f"  - project_id: '{project_id}'",
            "    region: cn-south-2",
            f"    endpoint: {simulator.url}",
        ]
        if project_id in own_token:
            lines.append(f"    auth: {{method: token, token_env: {own_token[project_id]}}}")
    lines += ["auth: {method: token, token_env: DRS_AUTH_TOKEN}", "page_size: 5"]
    config = tmp_path / "drs.yaml"
    config.write_text("\n".join(lines) + "\n")
    env = {
        "DRS_AUTH_TOKEN": simulator.token,
        "REVOKED_TOKEN": revoked_token,
        "EXPIRED_TOKEN": expired_token,
    }
    settings = load_settings_file(config, env)

    report = sync(simulator, settings, database)

    results = {r.run.project_id: r for r in report.projects}
    expected_failures = {
        forbidden: (403, "APIGW.0306", 0),
        unknown: (403, "DRS.M00261", 0),
        forbidden_later: (403, "APIGW.0302", 5),
        revoked: (401, "APIGW.0301", 0),
        expired: (401, "APIGW.0307", 0),
    }
    for project_id, (status, code, offset) in expected_failures.items():
        result = results[project_id]
        error = result.run.error or ""
        assert result.run.outcome == "failed", (project_id, error)
        assert result.error_code == code
        assert f"project {project_id}, page offset {offset}: HTTP {status} {code}: " in error
        assert result.request_id and re.fullmatch(r"[0-9a-f]{32}", result.request_id)
        assert f"(X-Request-Id {result.request_id})" in error
        assert "attempts" not in error, "a refusal is not retried"
        refused = [
            r
            for r in simulator.app.stats.log
            if r.project_id == project_id and r.status == status and (r.offset or 0) == offset
        ]
        assert len(refused) == 1, "asked once: waiting does not fix a refusal"
        assert ids(database, project_id) == set(), "nothing of it written"
        assert query(
            database,
            "SELECT outcome, error, jobs_seen FROM drs.sync_runs WHERE project_id = ?",
            [project_id],
        ) == [("failed", error, 0)]
        for token in env.values():
            assert token not in error
    for project_id in (good_a, good_b):
        assert results[project_id].run.outcome == "ok"
        assert ids(database, project_id) == set(jobs[project_id])
    assert report.count("failed") == len(expected_failures) and not report.all_ok
    assert_history_invariants(database)
