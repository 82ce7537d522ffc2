"""IAM password tokens: ``POST /v3/auth/tokens``, and the check of the tokens it issued.

As docs/drs-api.md describes IAM: a password body scoped to a project, the token in
the ``X-Subject-Token`` header, its end in ``token.expires_at``. A wrong
password or a locked user is 401 with IAM's own error body (``{"error":
{"code": 401, "message": ..., "title": "Unauthorized"}}``), not the gateway's.
Tokens live ``lifetime_s`` seconds of the simulator's clock; past that the
gateway answers 401 APIGW.0307.

Served by the same app as the DRS list (a real IAM is another host); the
simulator is given its users and their passwords, there are no defaults.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from drs_pipeline.simulator import errors
from drs_pipeline.simulator.clock import Clock
from drs_pipeline.simulator.errors import ApiError

TOKENS_PATH = "/v3/auth/tokens"
DEFAULT_LIFETIME_S = 24 * 3600.0


@dataclass
class IamStats:
    # Every POST /v3/auth/tokens, whatever its outcome.
    token_requests: int = 0
    issued: int = 0
    refused: int = 0


@dataclass(frozen=True)
class _Issued:
    domain_name: str
    user_name: str
    project_id: str
    expires_at: float


@dataclass(frozen=True)
class IamResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class SimIam:
    """Users (account, user name, password), the tokens issued, and their lifetime.

    ``lifetime_s`` and the sets may be changed while serving.
    """

    def __init__(self, clock: Clock, *, lifetime_s: float = DEFAULT_LIFETIME_S) -> None:
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.passwords: dict[tuple[str, str], str] = {}
        self.locked: set[tuple[str, str]] = set()
        self._issued: dict[str, _Issued] = {}
        self.stats = IamStats()

    def add_user(self, domain_name: str, user_name: str, password: str) -> None:
        self.passwords[(domain_name, user_name)] = password

    def issued_tokens(self) -> list[str]:
        """Every token issued so far (tests look for them where none may be)."""
        return list(self._issued)

    def expire_all(self) -> None:
        """Every token issued so far ends now (a password change does this for real)."""
        now = self.clock.now()
        self._issued = {
            token: _Issued(i.domain_name, i.user_name, i.project_id, min(i.expires_at, now))
            for token, i in self._issued.items()
        }

    # -- POST /v3/auth/tokens ----------------------------------------------------------

    def handle(self, method: str, body: bytes) -> IamResponse:
        self.stats.token_requests += 1
        if method != "POST":
            return _keystone_error(405, "The method is not allowed for the requested URL.")
        request = _password_request(body)
        if request is None:
            return IamResponse(
                400,
                orjson.dumps({"error_msg": "Request body is invalid.", "error_code": "IAM.0011"}),
            )
        domain_name, user_name, password, project_id = request
        account = (domain_name, user_name)
        if account in self.locked:
            self.stats.refused += 1
            return _keystone_error(401, "The account is locked.")
        known = self.passwords.get(account)
        if known is None or not secrets.compare_digest(known.encode(), password.encode()):
            self.stats.refused += 1
            return _keystone_error(401, "The username or password is wrong.")
        now = self.clock.now()
        token = "MIIsim" + secrets.token_urlsafe(48)
        expires_at = now + self.lifetime_s
        self._issued[token] = _Issued(domain_name, user_name, project_id, expires_at)
        self.stats.issued += 1
        document = {
            "token": {
                "expires_at": _iso(expires_at),
                "issued_at": _iso(now),
                "methods": ["password"],
                "project": {"id": project_id},
                "user": {"domain": {"name": domain_name}, "name": user_name},
            }
        }
        return IamResponse(201, orjson.dumps(document), {"X-Subject-Token": token})

    # -- the gateway's side --------------------------------------------------------------

    def check_token(self, token: str, project_id: str) -> ApiError | None:
        """None for a live token of ``project_id``; else the gateway's answer."""
        issued = self._issued.get(token)
        if issued is None:
            return errors.AUTH_FAILED
        if self.clock.now() >= issued.expires_at:
            return errors.TOKEN_EXPIRED
        if issued.project_id != project_id:
            # Scoped to another project: authentic, but not allowed here.
            return errors.FORBIDDEN
        return None


def _password_request(body: bytes) -> tuple[str, str, str, str] | None:
    """(account, user, password, project id) of a password body scoped by project id."""
    try:
        document: Any = orjson.loads(body)
        auth = document["auth"]
        identity = auth["identity"]
        user = identity["password"]["user"]
        fields = (user["domain"]["name"], user["name"], user["password"])
        project_id = auth["scope"]["project"]["id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if "password" not in identity.get("methods", ()):
        return None
    if not all(isinstance(v, str) and v for v in (*fields, project_id)):
        return None
    return (*fields, project_id)


def _keystone_error(status: int, message: str) -> IamResponse:
    titles = {401: "Unauthorized", 405: "Method Not Allowed"}
    body = {"error": {"code": status, "message": message, "title": titles[status]}}
    return IamResponse(status, orjson.dumps(body))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
