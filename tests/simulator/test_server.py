"""SimulatorServer and run_forever: loopback only, port 0, start/stop, another process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from drs_pipeline.simulator import (
    SimulatorServer,
    World,
    WorldSettings,
    build_simulator,
)
from drs_pipeline.simulator.server import check_loopback
from tests.simulator.helpers import TOKEN, list_path


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "192.168.0.1", "example.com", ""])
def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError):
        check_loopback(host)
    with pytest.raises(ValueError):
        SimulatorServer(build_simulator(WorldSettings(), tokens={TOKEN})).start(host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "localhost", "::1"])
def test_accepts_loopback_hosts(host: str) -> None:
    check_loopback(host)


def test_start_serve_stop() -> None:
    app = build_simulator(WorldSettings(), tokens={TOKEN})
    server = SimulatorServer(app)
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        assert server.running
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        pid = app.world.projects[0].project_id
        with httpx.Client(base_url=server.url, headers={"X-Auth-Token": TOKEN}) as c:
            first = c.get(list_path(pid))
            second = c.get(list_path(pid))
        assert first.status_code == second.status_code == 200
        # Keep-alive: the server does not ask to close the connection.
        assert "close" not in first.headers.get("connection", "")
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + list_path(pid), timeout=1)


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 not available")
    app = build_simulator(WorldSettings(), tokens={TOKEN})
    with SimulatorServer(app).start(host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        r = httpx.get(
            server.url + list_path(app.world.projects[0].project_id),
            headers={"X-Auth-Token": TOKEN},
        )
        assert r.status_code == 200


def test_run_forever_in_another_process_lists_the_same_jobs() -> None:
    # Arrivals once a day: nothing joins the list between the two processes' reads.
    code = textwrap.dedent(
        """
        import sys
        from drs_pipeline.simulator import WorldSettings, build_simulator, run_forever
        settings = WorldSettings(seed=9, arrival_interval_s=86400.0, retention_s=86400.0 * 30)
        app = build_simulator(settings, tokens={"t"})
        run_forever(app, "127.0.0.1", 0, on_ready=lambda url: print(url, flush=True))
        """
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        settings = WorldSettings(seed=9, arrival_interval_s=86400.0, retention_s=86400.0 * 30)
        pid = settings.projects[3].project_id
        r = httpx.get(url + list_path(pid), params={"limit": 100}, headers={"X-Auth-Token": "t"})
        assert r.status_code == 200
        here = World(settings).list_jobs(pid, time.time())
        theirs = [j["async_job_id"] for j in r.json()["jobs"]]
        assert theirs == [j.async_job_id for j in here]
        assert len(theirs) >= 25
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
