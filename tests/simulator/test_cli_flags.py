"""``drs-pipeline simulator``'s switches for what the documentation leaves open, as
the real command: each flag reaches the server it starts.

The world clock is frozen (``--frozen-at``), so the same world built here from
the same seed lists the same jobs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import httpx
import pytest

from drs_pipeline.cli import main
from drs_pipeline.simulator import ManualClock, World, WorldSettings
from tests.simulator.helpers import T0, TOKEN, list_path, simulator_command

FLAGS = (
    "--max-page",
    "--tie-share",
    "--random-ties",
    "--empty-once",
    "--empty-listings",
    "--ignore-id-filter",
    "--unknown-id-error",
    "--total-count",
    "--ignore-offset",
    "--trickle",
    "--frozen-at",
    "--clock-skew-s",
    "--no-date-header",
)


def test_help_names_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulator", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in text, flag


def expected(settings: WorldSettings, k: int = 0, **filters: Any) -> tuple[str, list[Any]]:
    world = World(settings, ManualClock(T0))
    pid = world.projects[k].project_id
    return pid, [j.record_at(T0) for j in world.list_jobs(pid, T0, **filters)]


def test_world_and_answer_flags() -> None:
    args = ("--seed", "5", "--speed", "60", "--tie-share", "0.5", "--frozen-at", str(T0))
    faults = ("--max-page", "3", "--total-count", "77", "--empty-once", "--unknown-id-error")
    settings = WorldSettings(seed=5, speed=60.0, tie_share=0.5)
    pid, jobs = expected(settings)
    # A tied world: some neighbours share their create time.
    assert any(a["create_time"] == b["create_time"] for a, b in itertools.pairwise(jobs))
    with (
        simulator_command(*args, *faults, env={"DRS_AUTH_TOKEN": TOKEN}) as url,
        httpx.Client(base_url=url, headers={"X-Auth-Token": TOKEN}, timeout=10) as client,
    ):

        def get(**params: Any) -> httpx.Response:
            return client.get(list_path(pid), params=params)

        assert get(limit=10).json() == {"total_count": 0, "jobs": []}
        assert get(limit=10).json() == {"total_count": 77, "jobs": jobs[:3]}
        assert get(limit=2000, offset=3).json() == {"total_count": 77, "jobs": jobs[3:6]}
        some = jobs[5]
        assert get(async_job_id=some["async_job_id"]).json() == {"total_count": 77, "jobs": [some]}
        unknown = get(async_job_id="00000000-0000-4000-8000-000000000000")
        assert (unknown.status_code, unknown.json()["error_code"]) == (400, "DRS.10000010")
        # Another project: its own empty first listing, its own account.
        other, other_jobs = expected(settings, 2)
        assert client.get(list_path(other)).json() == {"total_count": 0, "jobs": []}
        assert client.get(list_path(other)).json()["jobs"] == other_jobs[:3]
        assert {j["domain_name"] for j in other_jobs} == {settings.domain_of(other)[0]}


def test_ordering_and_trickle_flags() -> None:
    args = ("--seed", "6", "--speed", "1", "--tie-share", "0.8", "--frozen-at", str(T0))
    faults = (
        "--random-ties",
        "--ignore-offset",
        "--ignore-id-filter",
        "--empty-listings",
        "1",
        "--trickle",
        "0.0002",
        "--no-date-header",
    )
    settings = WorldSettings(seed=6, tie_share=0.8)
    pid, jobs = expected(settings)
    world = World(settings, ManualClock(T0))
    second = {j.async_job_id: math.floor(j.create_time) for j in world.list_jobs(pid, T0)}
    with (
        simulator_command(*args, *faults, env={"DRS_AUTH_TOKEN": TOKEN}) as url,
        httpx.Client(base_url=url, headers={"X-Auth-Token": TOKEN}, timeout=30) as client,
    ):

        def get(**params: Any) -> dict[str, Any]:
            r = client.get(list_path(pid), params=params)
            assert r.status_code == 200
            assert "date" not in r.headers
            body: dict[str, Any] = r.json()
            return body

        assert get(limit=20) == {"total_count": 0, "jobs": []}
        pages = [get(limit=20, offset=offset) for offset in (0, 20, 40, 60)]
        # Every page is the first page (the same seconds), in a new order within seconds.
        first = [j["async_job_id"] for j in jobs[:20]]
        for body in pages:
            assert body["total_count"] == len(jobs)
            got = [j["async_job_id"] for j in body["jobs"]]
            assert [second[i] for i in got] == [second[i] for i in first]
        assert len({tuple(j["async_job_id"] for j in b["jobs"]) for b in pages}) > 1
        by_id = get(limit=20, async_job_id=jobs[30]["async_job_id"])
        assert by_id["total_count"] == len(jobs)
        assert [second[j["async_job_id"]] for j in by_id["jobs"]] == [second[i] for i in first]


def test_clock_skew_flag_runs_the_server_ahead() -> None:
    args = ("--seed", "7", "--speed", "60", "--frozen-at", str(T0), "--clock-skew-s", "120")
    world = World(WorldSettings(seed=7, speed=60.0), ManualClock(T0))
    pid = world.projects[0].project_id
    ahead = [j.record_at(T0 + 120) for j in world.list_jobs(pid, T0 + 120)]
    with (
        simulator_command(*args, env={"DRS_AUTH_TOKEN": TOKEN}) as url,
        httpx.Client(base_url=url, headers={"X-Auth-Token": TOKEN}, timeout=10) as client,
    ):
        r = client.get(list_path(pid), params={"limit": 1000})
    assert r.json() == {"total_count": len(ahead), "jobs": ahead}
    assert r.headers.get_list("date") == ["Sat, 31 Jan 2026 03:27:45 GMT"]
