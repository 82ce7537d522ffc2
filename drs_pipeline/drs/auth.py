"""Authentication of DRS requests, as ``httpx.Auth`` flows.

An auth flow runs for every request httpx sends, retries included, so a
credential is attached in exactly one place and never copied into our code's
own data structures or messages.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable

import httpx

from drs_pipeline.config import Secret

REDACTED = "********"


class CredentialAuth(httpx.Auth):
    """An auth flow holding secrets, which can scrub them from text it did not write.

    A gateway may echo what it was sent (an AK in an error message): the client
    passes every server message through ``redact`` before it lands in an error,
    a log or the database.
    """

    def secrets(self) -> Iterable[Secret]:
        return ()

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            value = secret.reveal()
            if value:
                text = text.replace(value, REDACTED)
        return text


class TokenAuth(CredentialAuth):
    """``X-Auth-Token``: an IAM user token taken from the environment."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Auth-Token"] = self._token.reveal()
        yield request

    def secrets(self) -> Iterable[Secret]:
        return (self._token,)

    def __repr__(self) -> str:
        return "TokenAuth(token=********)"
