"""Helpers of the simulator tests: the fixed time, the token, paths, the test
handle and the simulator command as a process. Fixtures are in conftest.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from drs_pipeline.drs.statuses import LIST_PATH_TEMPLATE
from drs_pipeline.simulator import (
    Faults,
    ManualClock,
    SimulatorApp,
    SimulatorServer,
    World,
    WorldSettings,
)
from drs_pipeline.simulator.model import ANCHOR_2026

# A fixed "now" well past the anchor, so the default world is in steady state.
T0 = ANCHOR_2026 + 30 * 86400 + 12345.5

# The token the tests' simulators accept; the simulator itself has no default.
TOKEN = "simulator-test-token"


def list_path(project_id: str) -> str:
    return LIST_PATH_TEMPLATE.format(project_id=project_id)


@dataclass
class Sim:
    app: SimulatorApp
    server: SimulatorServer
    client: httpx.Client
    clock: ManualClock

    @property
    def world(self) -> World:
        return self.app.world

    @property
    def faults(self) -> Faults:
        return self.app.faults

    def pid(self, k: int = 0) -> str:
        return self.world.projects[k].project_id

    def configure(self, settings: WorldSettings, **world_kwargs: Any) -> World:
        """Swap in a world built from other settings (same clock)."""
        self.app.world = World(settings, self.clock, **world_kwargs)
        return self.app.world

    def get(
        self, project_id: str | None = None, *, token: str | None = TOKEN, **params: Any
    ) -> httpx.Response:
        headers = {} if token is None else {"X-Auth-Token": token}
        path = list_path(project_id if project_id is not None else self.pid())
        return self.client.get(path, params=params, headers=headers)

    def list_all(self, project_id: str | None = None, limit: int = 100, **params: Any) -> list[Any]:
        """Every page until an empty one, as Terraform pages the API."""
        rows: list[Any] = []
        offset = 0
        while True:
            r = self.get(project_id, offset=offset, limit=limit, **params)
            assert r.status_code == 200, r.text
            jobs = r.json()["jobs"]
            if not jobs:
                return rows
            rows += jobs
            offset += len(jobs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def simulator_command(*args: str, env: Mapping[str, str]) -> Iterator[str]:
    """``drs-pipeline simulator ARGS`` as its own process on a free loopback port; yields
    its URL once it answers HTTP. Secrets go in ``env``, never in ``args``."""
    port = free_port()
    command = Path(sys.executable).with_name("drs-pipeline")
    proc = subprocess.Popen(
        [str(command), "simulator", "--port", str(port), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/", timeout=1)  # 404 APIGW.0101: the server is up
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out, err = proc.communicate(timeout=10)
                    raise RuntimeError(f"simulator did not start: {out}{err}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
