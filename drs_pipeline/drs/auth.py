"""Authentication of DRS requests, as ``httpx.Auth`` flows.

An auth flow runs for every request httpx sends, retries included, so a
credential is attached in exactly one place and never copied into our code's
own data structures or messages.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

from drs_pipeline.config import Secret


class TokenAuth(httpx.Auth):
    """``X-Auth-Token``: an IAM user token taken from the environment."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Auth-Token"] = self._token.reveal()
        yield request

    def __repr__(self) -> str:
        return "TokenAuth(token=********)"
