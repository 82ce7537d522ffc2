"""Where one sync's requests go: the embedded simulator or real DRS.

``build_targets`` is the one place that tells the two apart. For the embedded
simulator it builds the simulator in-process, reached through an ASGI
transport with a token made for this sync; for real DRS, each configured
project's endpoint and auth flow (token, IAM password or AK/SK). Either way the
sync gets a client and one ``ProjectTarget`` per project, and treats both alike.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx

from drs_pipeline.config import (
    AkSkAuthSettings,
    AuthSettings,
    PasswordAuthSettings,
    Secret,
    Settings,
    SimulatorSettings,
)
from drs_pipeline.drs.auth import TokenAuth
from drs_pipeline.drs.client import DrsClient, PagingPolicy, ProjectTarget, utc_now
from drs_pipeline.drs.iam import IamAccount, IamTokenAuth, IamTokenCache
from drs_pipeline.drs.retry import RetryPolicy
from drs_pipeline.drs.signing import AkSkAuth, AkSkCredentials


@dataclass(frozen=True)
class SyncTargets:
    """The client of one sync and each project's endpoint and auth, by project id."""

    client: DrsClient
    projects: Mapping[str, ProjectTarget]


def build_targets(
    settings: Settings,
    *,
    retry: RetryPolicy | None = None,
    paging: PagingPolicy | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> SyncTargets:
    """The client and the projects' targets for ``settings``: the embedded simulator
    when the settings name it, else the configured DRS endpoints."""
    if settings.simulator is not None:
        transport, projects = _embedded_simulator(settings, settings.simulator)
    else:
        transport, projects = None, _configured_projects(settings, clock)
    client = DrsClient(
        paging=paging
        or PagingPolicy(
            page_size=settings.page_size, max_jobs_per_project=settings.max_jobs_per_project
        ),
        retry=retry,
        max_concurrency=settings.max_concurrency,
        language=settings.language,
        transport=transport,
        request_timeout_s=settings.request_timeout_s,
        sync_timeout_s=settings.sync_timeout_s,
        clock=clock,
    )
    return SyncTargets(client, projects)


def _embedded_simulator(
    settings: Settings, simulator: SimulatorSettings
) -> tuple[httpx.AsyncBaseTransport, dict[str, ProjectTarget]]:
    """The simulator in this process, accepting one token made for this sync."""
    # Imported here: only the default (no configuration) run needs the simulator.
    from drs_pipeline.simulator import WorldSettings, build_simulator

    token = Secret(secrets.token_hex(16))
    app = build_simulator(
        WorldSettings(seed=simulator.seed, speed=simulator.speed), tokens={token.reveal()}
    )
    auth = TokenAuth(token)
    projects = {
        project.project_id: ProjectTarget(project.project_id, project.endpoint, auth=auth)
        for project in settings.projects
    }
    return httpx.ASGITransport(app=app), projects


def _configured_projects(
    settings: Settings, clock: Callable[[], datetime]
) -> dict[str, ProjectTarget]:
    """Every project's endpoint and auth flow.

    IAM tokens are shared through one cache: a token serves every request of
    its scope for the whole sync, and is never kept beyond it.
    """
    iam_tokens = IamTokenCache(clock=clock)
    return {
        project.project_id: ProjectTarget(
            project.project_id,
            project.endpoint,
            auth=_project_auth(
                settings.auth_for(project), project.project_id, iam_tokens=iam_tokens, clock=clock
            ),
        )
        for project in settings.projects
    }


def _project_auth(
    auth: AuthSettings,
    project_id: str,
    *,
    iam_tokens: IamTokenCache,
    clock: Callable[[], datetime],
) -> httpx.Auth:
    """The auth flow of one project's requests."""
    if isinstance(auth, AkSkAuthSettings):
        credentials = AkSkCredentials(auth.ak, auth.sk, auth.security_token)
        # The signing date comes from the sync's clock (the simulator's in tests).
        return AkSkAuth(credentials, project_id, clock=clock)
    if isinstance(auth, PasswordAuthSettings):
        account = IamAccount(
            auth.iam_endpoint, auth.domain_name, auth.user_name, auth.password_env, auth.password
        )
        return IamTokenAuth(iam_tokens.source(account, project_id))
    return TokenAuth(auth.token)
