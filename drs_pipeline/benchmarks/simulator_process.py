"""The benchmark's simulator: a separate process serving over loopback HTTP.

A separate process so that it has its own interpreter (and core) and the
pipeline is measured, not the simulator. It is ``drs-pipeline simulator`` with
two differences a benchmark needs:

* its clock stands still (a ManualClock) and moves only when told to, over its
  stdin (``advance SECONDS``), so that the cold sync, the warm sync and their
  bounds see known pages (see ``benchmarks.world``);
* it generates every visible job before it says it is ready, and keeps each
  rendered page (the clock standing still makes them reusable), so that serving
  a page costs about what sending it does.

The token comes through the environment (``TOKEN_ENV``), never the command line.
The process exits when its stdin closes, so it cannot outlive the benchmark.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Self

import httpx

from drs_pipeline.benchmarks.world import BenchWorld
from drs_pipeline.drs.statuses import LIST_PATH_TEMPLATE
from drs_pipeline.simulator import Faults, ManualClock, SimulatorServer, World, build_simulator

TOKEN_ENV = "DRS_BENCH_TOKEN"  # noqa: S105 - the variable's name, not a token


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the benchmark's simulator (internal)")
    parser.add_argument("--projects", type=int, required=True)
    parser.add_argument("--jobs-per-project", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--page-cache", type=int, default=0, help="rendered pages to keep")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"{TOKEN_ENV} is not set", file=sys.stderr)
        return 2
    world = BenchWorld(args.projects, args.jobs_per_project)
    clock = ManualClock(world.first_sync_at)
    app = build_simulator(
        world.settings(),
        Faults(latency_s=args.latency_ms / 1000),
        tokens={token},
        clock=clock,
        job_cache=world.jobs_cached(),
        page_cache=args.page_cache,
    )
    _warm(app.world)
    with SimulatorServer(app) as server:
        _reply({"url": server.url})
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "advance":
                clock.advance(float(argument))
                _warm(app.world)
                _reply({"now": clock.now()})
            else:
                _reply({"error": f"unknown command {command!r}"})
    return 0


def _warm(world: World) -> None:
    world.warm()
    # A million cached jobs would otherwise be rescanned by every full collection,
    # pausing the server for a good part of a second each time.
    gc.freeze()


def _reply(message: dict[str, object]) -> None:
    print(json.dumps(message), flush=True)


class SimulatorProcess:
    """The parent's handle: ``with SimulatorProcess(...) as sim: sim.url``."""

    def __init__(
        self,
        world: BenchWorld,
        token: str,
        *,
        latency_ms: float = 0.0,
        page_size: int = 1000,
        start_timeout_s: float = 600.0,
    ) -> None:
        self.world = world
        self.token = token
        pages = math.ceil(world.jobs_per_project * 1.05 / page_size) + 2
        command = [
            sys.executable,
            "-m",
            "drs_pipeline.benchmarks.simulator_process",
            f"--projects={world.projects}",
            f"--jobs-per-project={world.jobs_per_project}",
            f"--latency-ms={latency_ms}",
            # Both moments of the world, every page of every project.
            f"--page-cache={2 * world.projects * pages + 100}",
        ]
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, TOKEN_ENV: token},
            text=True,
        )
        try:
            self.url = str(self._read()["url"])
            self._wait_until_it_answers(start_timeout_s)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self._process.pid

    def advance(self, seconds: float) -> None:
        """Move the world's clock; returns once every job visible then is generated."""
        stdin = self._pipe(self._process.stdin)
        stdin.write(f"advance {seconds}\n")
        stdin.flush()
        self._read()

    def close(self) -> None:
        process = self._process
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _read(self) -> dict[str, object]:
        # One JSON line per command. No timeout: the child only takes long while it
        # generates jobs, and it exits (closing the pipe) if anything goes wrong.
        line = self._pipe(self._process.stdout).readline()
        if not line:
            raise RuntimeError(
                f"benchmark simulator exited with code {self._process.poll()} before answering"
            )
        message = json.loads(line)
        if not isinstance(message, dict) or "error" in message:
            raise RuntimeError(f"benchmark simulator: {message}")
        return message

    def _wait_until_it_answers(self, timeout_s: float) -> None:
        project_id = self.world.project_ids()[0]
        url = self.url + LIST_PATH_TEMPLATE.format(project_id=project_id)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                response = httpx.get(
                    url, params={"limit": 1}, headers={"X-Auth-Token": self.token}, timeout=10
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"benchmark simulator at {self.url} does not answer")
            time.sleep(0.05)

    @staticmethod
    def _pipe(stream: IO[str] | None) -> IO[str]:
        assert stream is not None
        return stream


if __name__ == "__main__":
    raise SystemExit(main())
