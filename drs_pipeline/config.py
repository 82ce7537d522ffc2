"""Settings: ``drs.yaml`` and the environment, validated into typed values.

Where the settings come from, in order:

1. the YAML file named by ``DRS_CONFIG``;
2. ``./drs.yaml`` if it exists;
3. neither: the embedded simulator (no credentials, no network).

Everything is checked before the first request. Every error names the file and
the key (``projects[1].project_id``) so that a user can fix it without reading
our code. Secrets are never read from the file: the file names the environment
variable that holds them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

CONFIG_ENV = "DRS_CONFIG"
DUCKDB_PATH_ENV = "DRS_DUCKDB_PATH"
DEFAULT_CONFIG_NAME = "drs.yaml"
DEFAULT_TOKEN_ENV = "DRS_AUTH_TOKEN"  # noqa: S105 - a variable name, not a secret

# The checkout this package was installed from (editable install); the default
# database lives in its ignored ``data/`` folder, not relative to the cwd.
CHECKOUT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DUCKDB_PATH = CHECKOUT_DIR / "data" / "drs_history.duckdb"

PROJECT_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
REGION_PATTERN = re.compile(r"[a-z]{2,}(-[a-z0-9]+){1,4}")
LANGUAGES = ("en-us", "zh-cn")
MAX_PAGE_SIZE = 1000
AUTH_METHODS = ("token",)
DEFAULT_SCHEDULE = "*/5 * * * *"
# Five cron fields of digits, names, *, /, - and commas; Dagster checks the rest
# when it builds the schedule.
CRON_PATTERN = re.compile(r"[0-9A-Za-z*/,\-]+( +[0-9A-Za-z*/,\-]+){4}")
# Minutes a job may stay in a status before it counts as stuck.
DEFAULT_STUCK_AFTER_MINUTES = {
    "ASYNC_JOB_VALIDATING": 60,
    "ASYNC_JOB_VALIDATE_FAILED": 24 * 60,
    "AUTO_PARAM_VALIDATE_SUCCESS": 24 * 60,
}
DEFAULT_FRESHNESS_MINUTES = 15


class ConfigError(ValueError):
    """The configuration is unusable; the message names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class Secret:
    """A secret value that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ProjectSettings:
    project_id: str
    region: str
    endpoint: str


@dataclass(frozen=True)
class TokenAuthSettings:
    token_env: str
    token: Secret = field(repr=False)
    method: str = "token"


@dataclass(frozen=True)
class SimulatorSettings:
    """The embedded simulator used when no configuration file exists."""

    seed: int = 42
    # World seconds per wall second: 60 lets the demo show status transitions
    # within seconds while durations keep realistic proportions.
    speed: float = 60.0


@dataclass(frozen=True)
class Settings:
    projects: tuple[ProjectSettings, ...]
    auth: TokenAuthSettings
    page_size: int = MAX_PAGE_SIZE
    max_concurrency: int = 8
    language: str = "en-us"
    schedule: str = DEFAULT_SCHEDULE
    stuck_after_minutes: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_STUCK_AFTER_MINUTES)
    )
    # The history is stale when a project has had no ok sync for this long.
    freshness_minutes: float = DEFAULT_FRESHNESS_MINUTES
    source: str = "<embedded simulator>"
    simulator: SimulatorSettings | None = None

    @property
    def stuck_thresholds_s(self) -> dict[str, float]:
        return {status: minutes * 60 for status, minutes in self.stuck_after_minutes.items()}

    @property
    def uses_embedded_simulator(self) -> bool:
        return self.simulator is not None


def duckdb_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the history database lives: ``DRS_DUCKDB_PATH`` or the checkout default."""
    env = os.environ if env is None else env
    raw = env.get(DUCKDB_PATH_ENV, "").strip()
    return Path(raw).expanduser().resolve() if raw else DEFAULT_DUCKDB_PATH


def load_settings(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Settings from ``DRS_CONFIG``, else ``./drs.yaml``, else the embedded simulator."""
    env = os.environ if env is None else env
    explicit = env.get(CONFIG_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(str(path), CONFIG_ENV, "no such configuration file")
        return load_settings_file(path, env)
    local = (cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
    if local.is_file():
        return load_settings_file(local, env)
    return embedded_simulator_settings(env)


def embedded_simulator_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The default target: the simulator's projects, reached in-process."""
    # Imported here: the simulator is only needed when it is the target.
    from drs_pipeline.simulator import WorldSettings

    simulator = SimulatorSettings()
    world = WorldSettings(seed=simulator.seed, speed=simulator.speed)
    projects = tuple(
        # The in-process transport ignores the host; loopback keeps the URL honest.
        ProjectSettings(p.project_id, p.region, "http://localhost")
        for p in world.projects
    )
    # A fresh random token per process: the simulator accepts exactly this one.
    token = Secret(os.urandom(16).hex())
    return Settings(
        projects=projects,
        auth=TokenAuthSettings(token_env="(embedded simulator)", token=token),  # noqa: S106
        # The simulator's world runs `speed` times faster than the wall clock, so
        # its thresholds are the production ones scaled the same way.
        stuck_after_minutes={
            status: minutes / simulator.speed
            for status, minutes in DEFAULT_STUCK_AFTER_MINUTES.items()
        },
        simulator=simulator,
    )


def load_settings_file(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(source, "(file)", f"not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {exc}") from None
    return parse_settings(document, source, env)


TOP_LEVEL_KEYS = {
    "projects",
    "auth",
    "page_size",
    "max_concurrency",
    "language",
    "schedule",
    "stuck_after_minutes",
    "freshness_minutes",
}


def parse_settings(document: object, source: str, env: Mapping[str, str]) -> Settings:
    """Validate a parsed YAML document into Settings (no I/O but ``env``)."""
    top = _mapping(document, source, "(top level)")
    _reject_unknown_keys(top, TOP_LEVEL_KEYS, source, "")
    if "projects" not in top:
        raise ConfigError(source, "projects", "required: a list of projects to sync")
    projects = _parse_projects(top["projects"], source)
    auth = _parse_auth(top.get("auth", {}), source, env)
    page_size = _integer(top.get("page_size", MAX_PAGE_SIZE), source, "page_size", 1, MAX_PAGE_SIZE)
    max_concurrency = _integer(top.get("max_concurrency", 8), source, "max_concurrency", 1, 256)
    language = top.get("language", "en-us")
    if language not in LANGUAGES:
        raise ConfigError(source, "language", f"must be one of {', '.join(LANGUAGES)}")
    return Settings(
        projects=projects,
        auth=auth,
        page_size=page_size,
        max_concurrency=max_concurrency,
        language=language,
        schedule=parse_schedule(top.get("schedule", DEFAULT_SCHEDULE), source),
        stuck_after_minutes=_parse_stuck_after(top.get("stuck_after_minutes"), source),
        freshness_minutes=_minutes(
            top.get("freshness_minutes", DEFAULT_FRESHNESS_MINUTES), source, "freshness_minutes"
        ),
        source=source,
    )


def parse_schedule(value: object, source: str) -> str:
    if not isinstance(value, str) or not CRON_PATTERN.fullmatch(value.strip()):
        raise ConfigError(
            source, "schedule", "must be a cron expression of five fields, like '*/5 * * * *'"
        )
    return value.strip()


def load_schedule(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """Only the ``schedule`` key, for building Dagster definitions.

    Definitions load without credentials (``dg check defs``, the webserver), so
    nothing else is validated here; each run validates the whole file.
    """
    env = os.environ if env is None else env
    explicit = env.get(CONFIG_ENV, "").strip()
    path = Path(explicit).expanduser() if explicit else (cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
    if not path.is_file():
        return DEFAULT_SCHEDULE
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", f"cannot be read: {exc}") from None
    if not isinstance(document, dict):
        return DEFAULT_SCHEDULE
    return parse_schedule(document.get("schedule", DEFAULT_SCHEDULE), str(path))


def _parse_stuck_after(value: object, source: str) -> dict[str, float]:
    if value is None:
        return dict(DEFAULT_STUCK_AFTER_MINUTES)
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            source,
            "stuck_after_minutes",
            "must map status names to minutes, e.g. ASYNC_JOB_VALIDATING: 60",
        )
    thresholds: dict[str, float] = {}
    for status, minutes in value.items():
        key = f"stuck_after_minutes.{status}"
        if not isinstance(status, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", status):
            raise ConfigError(source, key, "must be a status name like ASYNC_JOB_VALIDATING")
        thresholds[status] = _minutes(minutes, source, key)
    return thresholds


def _minutes(value: object, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(source, key, "must be a positive number of minutes")
    return float(value)


def _parse_projects(value: object, source: str) -> tuple[ProjectSettings, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(source, "projects", "must be a non-empty list")
    projects: list[ProjectSettings] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        key = f"projects[{index}]"
        entry = _mapping(item, source, key)
        _reject_unknown_keys(entry, {"project_id", "region", "endpoint"}, source, key)
        project_id = _required_string(entry, "project_id", source, key)
        if not PROJECT_ID_PATTERN.fullmatch(project_id):
            raise ConfigError(
                source, f"{key}.project_id", "must be 32 lowercase hexadecimal characters"
            )
        if project_id in seen:
            raise ConfigError(
                source,
                f"{key}.project_id",
                f"duplicate of projects[{seen[project_id]}]: each project is listed once",
            )
        seen[project_id] = index
        region = _required_string(entry, "region", source, key)
        if not REGION_PATTERN.fullmatch(region):
            raise ConfigError(source, f"{key}.region", "must look like cn-south-2")
        endpoint = entry.get("endpoint", default_endpoint(region))
        if not isinstance(endpoint, str):
            raise ConfigError(source, f"{key}.endpoint", "must be a URL string")
        projects.append(
            ProjectSettings(project_id, region, _validate_endpoint(endpoint, source, key))
        )
    return tuple(projects)


def default_endpoint(region: str) -> str:
    # eu-west-101 is served from the .eu domain; every other region from .com.
    domain = "myhuaweicloud.eu" if region.startswith("eu-") else "myhuaweicloud.com"
    return f"https://drs.{region}.{domain}"


def _validate_endpoint(endpoint: str, source: str, key: str) -> str:
    key = f"{key}.endpoint"
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("https", "http"):
        raise ConfigError(source, key, "must start with https:// (or http:// for loopback)")
    if not parts.hostname:
        raise ConfigError(source, key, "has no host")
    # No credentials, query or fragment: the path of each request is built by the client,
    # and anything else in the URL would be sent (or logged) where nobody expects it.
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(source, key, "must be scheme://host[:port][/path] only")
    if parts.path not in ("", "/"):
        raise ConfigError(source, key, "must not carry a path: the client appends /v5/...")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(source, key, "has an invalid port") from None
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            source,
            key,
            "plain http:// is allowed only for loopback hosts (the simulator); use https://",
        )
    return f"{parts.scheme}://{parts.netloc}"


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse_auth(value: object, source: str, env: Mapping[str, str]) -> TokenAuthSettings:
    auth = _mapping(value, source, "auth")
    _reject_unknown_keys(auth, {"method", "token_env"}, source, "auth")
    method = auth.get("method", "token")
    if method not in AUTH_METHODS:
        raise ConfigError(
            source, "auth.method", f"{method!r} is not supported; use one of {AUTH_METHODS}"
        )
    token_env = auth.get("token_env", DEFAULT_TOKEN_ENV)
    if not isinstance(token_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
        raise ConfigError(source, "auth.token_env", "must be an environment variable name")
    token = env.get(token_env, "").strip()
    if not token:
        raise ConfigError(
            source, "auth.token_env", f"environment variable {token_env} is not set or empty"
        )
    return TokenAuthSettings(token_env=token_env, token=Secret(token))


def _mapping(value: object, source: str, key: str) -> dict[str, Any]:
    if value is None and key != "(top level)":
        return {}
    if not isinstance(value, dict):
        raise ConfigError(source, key, "must be a mapping of keys to values")
    return value


def _reject_unknown_keys(
    mapping: dict[str, Any], allowed: set[str], source: str, prefix: str
) -> None:
    for name in mapping:
        if name not in allowed:
            key = f"{prefix}.{name}" if prefix else str(name)
            raise ConfigError(
                source, key, f"unknown key; allowed here: {', '.join(sorted(allowed))}"
            )


def _required_string(entry: dict[str, Any], name: str, source: str, prefix: str) -> str:
    if name not in entry:
        raise ConfigError(source, f"{prefix}.{name}", "required")
    value = entry[name]
    if isinstance(value, int | float):
        # YAML reads an unquoted all-digit id as a number and drops its leading zeros.
        raise ConfigError(source, f"{prefix}.{name}", "must be a string: quote it in the YAML")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(source, f"{prefix}.{name}", "must be a non-empty string")
    return value.strip()


def _integer(value: object, source: str, key: str, low: int, high: int) -> int:
    # bool is an int in Python; `page_size: yes` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(source, key, f"must be an integer from {low} to {high}")
    if not low <= value <= high:
        raise ConfigError(source, key, f"must be from {low} to {high}, got {value}")
    return value
