"""Serving the simulator over real HTTP on loopback, with uvicorn.

``SimulatorServer`` runs in a background thread (tests, the product's embedded
mode); ``run_forever`` in the foreground (the benchmark's separate process).
Both bind the socket themselves so that port 0 works and the real port is known
before the first request. Loopback only: the simulator accepts a fixed token and
must never be reachable from another machine.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import uvicorn

from drs_pipeline.simulator.app import SimulatorApp

# Longer than any client's pool expiry (httpx: 5 s), so the server never closes an idle
# connection at the moment the client reuses it: that race would look like a fault.
KEEP_ALIVE_S = 75
# A stalled request must not hold up stop() for its whole stall.
GRACEFUL_SHUTDOWN_S = 2


def check_loopback(host: str) -> None:
    """ValueError unless ``host`` is 127.0.0.0/8, ::1 or localhost."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"simulator host must be a loopback address, not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"simulator host must be a loopback address, not {host!r}")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on a loopback ``host``; port 0 picks a free port."""
    check_loopback(host)
    if host == "localhost":
        host = "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listen now: a client that connects before the server loop runs waits in the
        # backlog instead of being refused.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app: SimulatorApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        # log_config=None: do not reconfigure the host process's logging (Dagster, pytest).
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Nothing sits in front of it: X-Forwarded-* must not change the client address.
        proxy_headers=False,
        # The app sends Date from the world's clock; uvicorn's, from the wall clock,
        # would be a second Date header.
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


class SimulatorServer:
    """``with SimulatorServer(app) as server: httpx.get(server.url + ...)``."""

    def __init__(self, app: SimulatorApp) -> None:
        self.app = app
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; only once started."""
        if self._url is None:
            raise RuntimeError("server not started")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("server already started")
        sock = bind_socket(host, port)
        server = uvicorn.Server(_config(self.app))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="drs-simulator", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("simulator server failed to start")
            time.sleep(0.005)
        self._server, self._thread, self._url = server, thread, socket_url(sock)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_forever(
    app: SimulatorApp,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM. ``on_ready(url)`` is called once
    the socket listens (useful with port 0)."""
    sock = bind_socket(host, port)
    if on_ready is not None:
        on_ready(socket_url(sock))
    uvicorn.Server(_config(app)).run(sockets=[sock])
