"""A webhook receiver on loopback for the alerts' tests: a real HTTP server that records
every request and answers as the test says; it can be taken down and brought back up
on the same port."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# What the receiver answers a request with: (status, body).
Answer = Callable[[Received], tuple[int, str]]


def answer_ok(request: Received) -> tuple[int, str]:
    """What each tool answers a message it accepted, told apart by the path."""
    if request.path.startswith("/feishu"):
        return 200, '{"code":0,"msg":"success","data":{}}'
    if request.path.startswith(("/dingtalk", "/wecom")):
        return 200, '{"errcode":0,"errmsg":"ok"}'
    return 200, "ok"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answer: Answer = answer_ok
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.up()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, path_prefix: str = "/") -> list[Received]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                parts = urlsplit(self.path)
                request = Received(
                    "POST",
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                receiver.requests.append(request)
                status, body = receiver.answer(request)
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: what a timeout test wants

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads the requests, not a log

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening: a POST now fails to connect."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
