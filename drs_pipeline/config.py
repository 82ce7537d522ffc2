"""Settings: ``drs.yaml`` and the environment, validated into typed values.

Where the settings come from, in order:

1. the YAML file named by ``DRS_CONFIG``;
2. ``drs.yaml`` in the home folder (``DRS_HOME``, else the current directory);
3. neither: the embedded simulator (no credentials, no network).

The history database defaults to ``data/drs_history.duckdb`` in the same home
folder (``DRS_DUCKDB_PATH`` overrides it): one base for both, resolved here only.

Everything is checked before the first request. Every error names the file and
the key (``projects[1].project_id``) so that a user can fix it without reading
our code. Secrets are never read from the file: the file names the environment
variable that holds them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from drs_pipeline.drs import statuses as drs_statuses
from drs_pipeline.drs.regions import default_endpoint

CONFIG_ENV = "DRS_CONFIG"
DUCKDB_PATH_ENV = "DRS_DUCKDB_PATH"
HOME_ENV = "DRS_HOME"
DEFAULT_CONFIG_NAME = "drs.yaml"
# Inside the home folder (DRS_HOME, else the current directory).
DEFAULT_DUCKDB_NAME = Path("data") / "drs_history.duckdb"
DEFAULT_TOKEN_ENV = "DRS_AUTH_TOKEN"  # noqa: S105 - a variable name, not a secret
# The official SDKs' variable names, so that one environment serves both.
DEFAULT_AK_ENV = "HUAWEICLOUD_SDK_AK"
DEFAULT_SK_ENV = "HUAWEICLOUD_SDK_SK"
DEFAULT_SECURITY_TOKEN_ENV = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a variable name
DEFAULT_PASSWORD_ENV = "HUAWEICLOUD_IAM_PASSWORD"  # noqa: S105 - a variable name
DEFAULT_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"

PROJECT_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
REGION_PATTERN = re.compile(r"[a-z]{2,}(-[a-z0-9]+){1,4}")
# A DNS name (urlsplit lower-cases it) or an IPv4/IPv6 address without its brackets.
HOST_PATTERN = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")
LANGUAGES = ("en-us", "zh-cn")
MAX_PAGE_SIZE = 1000
AUTH_METHODS = ("token", "password", "aksk")
# The keys each method takes; the others are rejected as unknown.
AUTH_KEYS = {
    "token": {"method", "token_env"},
    "password": {"method", "iam_endpoint", "domain_name", "user_name", "password_env"},
    "aksk": {"method", "ak_env", "sk_env", "security_token_env"},
}
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An AK goes into "Access=<AK>," and a security token into a header: printable
# ASCII, and for the AK no comma or space.
ACCESS_KEY_PATTERN = re.compile(r"[!-+\--~]+")
HEADER_VALUE_PATTERN = re.compile(r"[!-~]+")
DEFAULT_SCHEDULE = "*/5 * * * *"
# The five fields of a cron expression: (name, lowest, highest, names of values).
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, 1)}),
    ("day of week", 0, 7, {name: number for number, name in enumerate(_DAYS)}),
)
# Minutes a job may stay in a status before it counts as stuck.
DEFAULT_STUCK_AFTER_MINUTES = {
    "ASYNC_JOB_VALIDATING": 60,
    "ASYNC_JOB_VALIDATE_FAILED": 24 * 60,
    "AUTO_PARAM_VALIDATE_SUCCESS": 24 * 60,
}
DEFAULT_FRESHNESS_MINUTES = 15
DEFAULT_MAX_GONE_SHARE = 0.2
DEFAULT_MAX_ABSENCE_CHECKS = 100
DEFAULT_MAX_JOBS_PER_PROJECT = 10_000_000
DEFAULT_REQUEST_TIMEOUT_S = 60.0
DEFAULT_SYNC_TIMEOUT_S = 1800.0
DEFAULT_WATCH_STATUSES = (drs_statuses.VALIDATING,)
DEFAULT_WATCH_SECONDS = 30
STATUS_NAME_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*")
# What alerts can be raised for (docs/alerts.md), and where they can be sent.
ALERT_KINDS = ("validate_failed", "stuck", "project_failed", "project_recovered", "stale")
WEBHOOK_FORMATS = ("generic", "slack", "feishu", "dingtalk", "wecom")
# The tools whose custom bots check a signature made with a secret of their own.
SIGNED_WEBHOOK_FORMATS = ("feishu", "dingtalk")
# A webhook's name shows in logs, metadata and the database: short and plain.
WEBHOOK_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# drs.yaml is a short file: anything larger is refused before it is parsed.
MAX_CONFIG_BYTES = 1024 * 1024
# Values (scalars, lists, mappings) the document may hold once its aliases are
# expanded: far more than any real file, far less than an alias bomb.
MAX_YAML_VALUES = 100_000


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
class TokenAuthSettings:
    token_env: str
    token: Secret = field(repr=False)
    method: str = "token"


@dataclass(frozen=True)
class PasswordAuthSettings:
    """IAM password tokens, obtained and renewed by the client."""

    iam_endpoint: str
    domain_name: str
    user_name: str
    password_env: str
    password: Secret = field(repr=False)
    method: str = "password"


@dataclass(frozen=True)
class AkSkAuthSettings:
    """AK/SK request signing; ``security_token`` with temporary credentials only."""

    ak_env: str
    sk_env: str
    ak: Secret = field(repr=False)
    sk: Secret = field(repr=False)
    security_token_env: str | None = None
    security_token: Secret | None = field(default=None, repr=False)
    method: str = "aksk"


AuthSettings = TokenAuthSettings | PasswordAuthSettings | AkSkAuthSettings


@dataclass(frozen=True)
class ProjectSettings:
    project_id: str
    region: str
    endpoint: str
    # How this project authenticates: its own ``auth`` or the file's. Always set
    # by the parser; None (built elsewhere) means ``Settings.auth``.
    auth: AuthSettings | None = None


@dataclass(frozen=True)
class SimulatorSettings:
    """The embedded simulator used when no configuration file exists."""

    seed: int = 42
    # World seconds per wall second: 60 lets the demo show status transitions
    # within seconds while durations keep realistic proportions.
    speed: float = 60.0


@dataclass(frozen=True)
class WatchSettings:
    """The watch (``drs_pipeline.watch``): which statuses it lists, and how often."""

    # Listed with the API's status filter each round; empty turns the watch off.
    statuses: tuple[str, ...] = DEFAULT_WATCH_STATUSES
    # Seconds between rounds: the sensor's interval and the command's default.
    seconds: int = DEFAULT_WATCH_SECONDS


@dataclass(frozen=True)
class WebhookSettings:
    """Where alerts go: names of the variables holding the URL and the signing secret,
    never their values, which are read when the alerts are delivered."""

    name: str
    url_env: str
    format: str = "generic"
    secret_env: str | None = None


@dataclass(frozen=True)
class AlertSettings:
    """The ``alerts`` key: the webhooks, and the kinds of alert sent to them."""

    webhooks: tuple[WebhookSettings, ...] = ()
    on: tuple[str, ...] = ALERT_KINDS


@dataclass(frozen=True)
class Settings:
    projects: tuple[ProjectSettings, ...]
    # The default for projects without their own ``auth``; None when every
    # project has its own and the file gives none.
    auth: AuthSettings | None
    page_size: int = MAX_PAGE_SIZE
    max_concurrency: int = 8
    language: str = "en-us"
    schedule: str = DEFAULT_SCHEDULE
    stuck_after_minutes: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_STUCK_AFTER_MINUTES)
    )
    # The history is stale when a project has had no ok sync for this long.
    freshness_minutes: float = DEFAULT_FRESHNESS_MINUTES
    # Answers that must not be believed (docs/configuration.md): more than this share
    # of a project's present jobs missing from a listing marks nothing gone ...
    max_gone_share: float = DEFAULT_MAX_GONE_SHARE
    # ... and at most this many missing jobs are asked for by id per project and sync.
    max_absence_checks: int = DEFAULT_MAX_ABSENCE_CHECKS
    # A project the API says is larger fails: nothing plans or holds more.
    max_jobs_per_project: int = DEFAULT_MAX_JOBS_PER_PROJECT
    # Deadlines of one request (send to last byte) and of a whole sync.
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    sync_timeout_s: float = DEFAULT_SYNC_TIMEOUT_S
    watch: WatchSettings = WatchSettings()
    alerts: AlertSettings = AlertSettings()
    source: str = "<embedded simulator>"
    simulator: SimulatorSettings | None = None

    @property
    def stuck_thresholds_s(self) -> dict[str, float]:
        return {status: minutes * 60 for status, minutes in self.stuck_after_minutes.items()}

    @property
    def uses_embedded_simulator(self) -> bool:
        return self.simulator is not None

    def auth_for(self, project: ProjectSettings) -> AuthSettings:
        """The authentication of ``project``: its own, else the default."""
        auth = project.auth if project.auth is not None else self.auth
        if auth is None:
            raise ValueError(f"project {project.project_id} has no authentication settings")
        return auth


def drs_home(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The base of the default paths: ``DRS_HOME``, else the current directory."""
    env = os.environ if env is None else env
    raw = env.get(HOME_ENV, "").strip()
    base = cwd or Path.cwd()
    return (base / Path(raw).expanduser()).resolve() if raw else base.resolve()


def duckdb_path(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """Where the history database lives: ``DRS_DUCKDB_PATH``, else
    ``data/drs_history.duckdb`` in the home folder (``drs_home``)."""
    env = os.environ if env is None else env
    raw = env.get(DUCKDB_PATH_ENV, "").strip()
    if raw:
        return ((cwd or Path.cwd()) / Path(raw).expanduser()).resolve()
    return drs_home(env, cwd) / DEFAULT_DUCKDB_NAME


PUBLISHED_PATH_ENV = "DRS_PUBLISHED_PATH"


def published_path(
    env: Mapping[str, str] | None = None, database: Path | None = None, cwd: Path | None = None
) -> Path:
    """Where readers find the published copy: ``DRS_PUBLISHED_PATH``, else beside the
    main database (``database``, else ``duckdb_path``): ``<name>_published.duckdb``.

    Every writer and every reader resolves it here, so that a sync into an explicit
    ``--database`` still publishes where ``DRS_PUBLISHED_PATH`` tells readers to look.
    """
    env = os.environ if env is None else env
    raw = env.get(PUBLISHED_PATH_ENV, "").strip()
    if raw:
        return given_path(raw, cwd)
    main = database if database is not None else duckdb_path(env, cwd)
    return main.with_name(f"{main.stem}_published{main.suffix or '.duckdb'}")


def given_path(raw: str, cwd: Path | None = None) -> Path:
    """A path given by a setting or an option, resolved as those of the environment are."""
    return ((cwd or Path.cwd()) / Path(raw).expanduser()).resolve()


def config_path(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """The configuration file: ``DRS_CONFIG`` (which must exist), else ``drs.yaml`` in
    the home folder if it exists, else None (the embedded simulator)."""
    env = os.environ if env is None else env
    explicit = env.get(CONFIG_ENV, "").strip()
    if explicit:
        path = (cwd or Path.cwd()) / Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(str(path), CONFIG_ENV, "no such configuration file")
        return path
    local = drs_home(env, cwd) / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def load_settings(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Settings from ``DRS_CONFIG``, else ``$DRS_HOME/drs.yaml``, else the embedded simulator."""
    env = os.environ if env is None else env
    path = config_path(env, cwd)
    return embedded_simulator_settings(env) if path is None else load_settings_file(path, env)


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
    return parse_settings(read_yaml(path), str(path), env)


def read_yaml(path: Path) -> object:
    """The YAML document in ``path``, refused when it is not a plain, small document:
    too large a file, or aliases that expand it beyond ``MAX_YAML_VALUES`` values (an
    alias bomb, "billion laughs"), is refused before anything is built from it."""
    source = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                source, "(file)", f"is larger than {MAX_CONFIG_BYTES} bytes: not a drs.yaml"
            )
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {short(exc)}") from None
    try:
        return _compose_and_construct(text, source)
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        raise ConfigError(source, "(file)", f"not valid YAML: {_yaml_problem(exc)}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        # PyYAML's own limits: an integer of more than 4300 digits, nesting too deep.
        raise ConfigError(source, "(file)", f"not valid YAML: {short(exc)}") from None


def _compose_and_construct(text: str, source: str) -> object:
    loader = yaml.SafeLoader(text)  # refuses control characters already
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_alias_bombs(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint and where, without the lines of the file it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        mark = exc.problem_mark
        return cut(f"{what} (line {mark.line + 1}, column {mark.column + 1})", 200)
    return cut(str(exc), 200)


def _refuse_alias_bombs(root: yaml.Node, source: str) -> None:
    """Count the values the document would hold with every alias expanded (merge keys
    included), without expanding anything: each node is counted once, then reused."""
    expansion = _Expansion(source)
    if expansion.size(root) <= MAX_YAML_VALUES:
        return
    # Name where it happens: down the mappings from the top to the first value too
    # large, and into a list only when just one of its items is (projects[0]).
    path, node = "", root
    while True:
        children = [
            (child_path, child)
            for child_path, child in _children(node, path)
            if expansion.size(child) > MAX_YAML_VALUES
        ]
        if isinstance(node, yaml.MappingNode):
            children = [(p, c) for p, c in children if not p.endswith("(key)")][:1]
        if len(children) != 1:
            break
        ((path, node),) = children
    raise ConfigError(
        source,
        path or "(top level)",
        f"expands to more than {MAX_YAML_VALUES} values through YAML aliases (an alias "
        "bomb?): refused; write the values out instead of nesting aliases",
    )


def _children(node: yaml.Node, path: str) -> list[tuple[str, yaml.Node]]:
    """A node's children, each with the key path an error names it by."""
    if isinstance(node, yaml.SequenceNode):
        return [(f"{path}[{index}]", item) for index, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        found = []
        for key_node, value_node in node.value:
            name = short_key(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child_path = f"{path}.{name}" if path else name
            found += [(f"{child_path} (key)", key_node), (child_path, value_node)]
        return found
    return []


class _Expansion:
    """How many values a node stands for, aliases expanded; counting stops past the
    limit, so no node costs more than its own children, counted once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sizes: dict[int, int] = {}
        self.entered: dict[int, str] = {}  # nodes being counted, by the path they were met at

    def size(self, node: yaml.Node, path: str = "") -> int:
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        if key in self.entered:
            raise ConfigError(
                self.source,
                path or "(top level)",
                f"a YAML alias refers to {self.entered[key] or 'the whole document'}, "
                "which contains it",
            )
        self.entered[key] = path
        total = 1
        for child_path, child in _children(node, path):
            total += self.size(child, child_path.removesuffix(" (key)"))
            if total > MAX_YAML_VALUES:
                break  # enough to refuse; the rest need not be counted
        del self.entered[key]
        self.sizes[key] = total
        return total


_SHORT = reprlib.Repr()
_SHORT.maxstring = 40
_SHORT.maxother = 40
_SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxlevel = 2


def short(value: object, limit: int = 80) -> str:
    """A bad value as an error message may quote it: a bounded repr (strings quoted),
    or for an exception its message, cut to ``limit`` characters. Never walks more
    of a nested value than it shows."""
    return cut(str(value) if isinstance(value, BaseException) else _SHORT.repr(value), limit)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_key(name: object) -> str:
    """A key of the file as an error names it: as written when it is a short string."""
    if isinstance(name, str) and len(name) <= 40 and name.isprintable():
        return name
    return short(name, 40)


TOP_LEVEL_KEYS = {
    "projects",
    "auth",
    "page_size",
    "max_concurrency",
    "language",
    "schedule",
    "stuck_after_minutes",
    "freshness_minutes",
    "max_gone_share",
    "max_absence_checks",
    "max_jobs_per_project",
    "request_timeout_s",
    "sync_timeout_s",
    "watch",
    "alerts",
}


def parse_settings(document: object, source: str, env: Mapping[str, str]) -> Settings:
    """Validate a parsed YAML document into Settings (no I/O but ``env``)."""
    top = _mapping(document, source, "(top level)")
    _reject_unknown_keys(top, TOP_LEVEL_KEYS, source, "")
    if "projects" not in top:
        raise ConfigError(source, "projects", "required: a list of projects to sync")
    projects = _parse_projects(top["projects"], source, env)
    # The file's auth is the default of projects without their own; it is read
    # (and its variables required) when some project uses it or it is written.
    auth: AuthSettings | None = None
    if "auth" in top or any(p.auth is None for p in projects):
        auth = _parse_auth(top.get("auth", {}), source, env, "auth")
        projects = tuple(
            p if p.auth is not None else dataclasses.replace(p, auth=auth) for p in projects
        )
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
        max_gone_share=_share(top.get("max_gone_share", DEFAULT_MAX_GONE_SHARE), source),
        max_absence_checks=_integer(
            top.get("max_absence_checks", DEFAULT_MAX_ABSENCE_CHECKS),
            source,
            "max_absence_checks",
            0,
            100_000,
        ),
        max_jobs_per_project=_integer(
            top.get("max_jobs_per_project", DEFAULT_MAX_JOBS_PER_PROJECT),
            source,
            "max_jobs_per_project",
            1,
            1_000_000_000,
        ),
        request_timeout_s=_seconds(
            top.get("request_timeout_s", DEFAULT_REQUEST_TIMEOUT_S), source, "request_timeout_s"
        ),
        sync_timeout_s=_seconds(
            top.get("sync_timeout_s", DEFAULT_SYNC_TIMEOUT_S), source, "sync_timeout_s"
        ),
        watch=parse_watch(top.get("watch"), source),
        alerts=parse_alerts(top.get("alerts"), source),
        source=source,
    )


def parse_schedule(value: object, source: str) -> str:
    """A cron expression of five fields (UTC), checked field by field here, so that a
    bad one fails every run with this message instead of breaking Dagster's schedule."""
    problem = _cron_problem(value.strip()) if isinstance(value, str) else "not a string"
    if problem:
        raise ConfigError(
            source,
            "schedule",
            f"must be a cron expression of five fields, like '*/5 * * * *': {problem}",
        )
    assert isinstance(value, str)
    return " ".join(value.split())


def _cron_problem(expression: str) -> str | None:
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        return f"{short(expression)} has {len(fields)} fields"
    for text, (name, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for item in text.split(","):
            values, _, step = item.partition("/")
            if step and not (step.isdigit() and 0 < int(step) <= high):
                return f"the {name} field's step {short(step)} is not a number from 1 to {high}"
            if values == "*":
                continue
            for part in values.split("-", 1):
                number = int(part) if part.isdigit() else names.get(part.lower())
                if number is None or not low <= number <= high:
                    return f"the {name} field {short(item)} is not within {low}-{high}"
    return None


def load_schedule(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """Only the ``schedule`` key, for building Dagster definitions.

    Definitions load without credentials (``dg check defs``, the webserver), so
    nothing else is validated here; each run validates the whole file. Raises
    ConfigError when the file or its ``schedule`` is unusable.
    """
    path = config_path(env, cwd)
    if path is None:
        return DEFAULT_SCHEDULE
    document = read_yaml(path)
    if not isinstance(document, dict):
        return DEFAULT_SCHEDULE
    return parse_schedule(document.get("schedule", DEFAULT_SCHEDULE), str(path))


@dataclass(frozen=True)
class ProjectLayout:
    """What Dagster's definitions take from the configuration when they load: the
    projects (one partition each) and ``freshness_minutes`` (the assets' freshness
    policy). Read without credentials, as ``load_schedule`` reads only its key."""

    project_ids: tuple[str, ...]
    freshness_minutes: float = DEFAULT_FRESHNESS_MINUTES


def load_layout(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> ProjectLayout:
    """The layout of ``DRS_CONFIG``, else ``$DRS_HOME/drs.yaml``, else the embedded
    simulator's projects. Raises ConfigError when the file or those keys are unusable."""
    path = config_path(env, cwd)
    if path is None:
        projects = embedded_simulator_settings(env).projects
        return ProjectLayout(tuple(project.project_id for project in projects))
    return load_layout_file(path)


def load_layout_file(path: Path) -> ProjectLayout:
    """The layout of the configuration file at ``path`` (only its ``projects[].project_id``
    and ``freshness_minutes``; each run validates the whole file)."""
    source = str(path)
    top = _mapping(read_yaml(path), source, "(top level)")
    value = top.get("projects")
    if not isinstance(value, list) or not value:
        raise ConfigError(source, "projects", "must be a non-empty list")
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        _project_id(
            _mapping(item, source, f"projects[{index}]"), source, f"projects[{index}]", seen
        )
    minutes = _minutes(
        top.get("freshness_minutes", DEFAULT_FRESHNESS_MINUTES), source, "freshness_minutes"
    )
    return ProjectLayout(tuple(seen), minutes)


def load_watch(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> WatchSettings:
    """Only the ``watch`` key, for building Dagster definitions (the sensor's interval),
    as ``load_schedule`` reads only ``schedule``. Raises ConfigError when the file or
    its ``watch`` is unusable."""
    path = config_path(env, cwd)
    if path is None:
        return WatchSettings()
    document = read_yaml(path)
    if not isinstance(document, dict):
        return WatchSettings()
    return parse_watch(document.get("watch"), str(path))


def parse_watch(value: object, source: str) -> WatchSettings:
    if value is None:
        return WatchSettings()
    watch = _mapping(value, source, "watch")
    _reject_unknown_keys(watch, {"statuses", "seconds"}, source, "watch")
    seconds = _integer(
        watch.get("seconds", DEFAULT_WATCH_SECONDS), source, "watch.seconds", 1, 86_400
    )
    listed = watch.get("statuses", list(DEFAULT_WATCH_STATUSES))
    if not isinstance(listed, list):
        raise ConfigError(
            source,
            "watch.statuses",
            "must be a list of status names, like [ASYNC_JOB_VALIDATING] ([] turns the watch off)",
        )
    for index, status in enumerate(listed):
        key = f"watch.statuses[{index}]"
        if not isinstance(status, str) or not STATUS_NAME_PATTERN.fullmatch(status):
            raise ConfigError(source, key, "must be a status name like ASYNC_JOB_VALIDATING")
        if status == drs_statuses.COMMIT_SUCCESS:
            # Final: watching it would list every committed job each round, and no
            # bound it could sharpen ends there.
            raise ConfigError(
                source, key, f"{status} never changes again: watching it sharpens nothing"
            )
        if status in listed[:index]:
            raise ConfigError(source, key, f"duplicate of watch.statuses[{listed.index(status)}]")
    return WatchSettings(statuses=tuple(listed), seconds=seconds)


def parse_alerts(value: object, source: str) -> AlertSettings:
    """The ``alerts`` key: its structure only; the URLs and secrets stay in the
    environment until the alerts step reads them (drs_pipeline.alerts)."""
    if value is None:
        return AlertSettings()
    alerts: dict[Any, Any] = dict(_mapping(value, source, "alerts"))
    # YAML 1.1 reads an unquoted `on` key as the boolean true.
    if True in alerts:
        if "on" in alerts:
            raise ConfigError(source, "alerts.on", "given twice (on and 'on')")
        alerts["on"] = alerts.pop(True)
    _reject_unknown_keys(alerts, {"webhooks", "on"}, source, "alerts")
    listed = alerts.get("webhooks", [])
    if not isinstance(listed, list):
        raise ConfigError(source, "alerts.webhooks", "must be a list of webhooks")
    webhooks: list[WebhookSettings] = []
    for index, item in enumerate(listed):
        key = f"alerts.webhooks[{index}]"
        entry = _mapping(item, source, key)
        _reject_unknown_keys(entry, {"name", "url_env", "format", "secret_env"}, source, key)
        name = _required_string(entry, "name", source, key)
        if not WEBHOOK_NAME_PATTERN.fullmatch(name):
            raise ConfigError(
                source,
                f"{key}.name",
                "must be letters, digits, '_', '.' or '-' (at most 64), like ops-chat",
            )
        for earlier, webhook in enumerate(webhooks):
            if webhook.name == name:
                raise ConfigError(source, f"{key}.name", f"duplicate of alerts.webhooks[{earlier}]")
        if "url_env" not in entry:
            raise ConfigError(source, f"{key}.url_env", "required: the variable holding the URL")
        url_env = _env_name(entry, "url_env", "", source, key)
        format_ = entry.get("format", "generic")
        if format_ not in WEBHOOK_FORMATS:
            raise ConfigError(
                source,
                f"{key}.format",
                f"{short(format_)} is not supported; use one of {', '.join(WEBHOOK_FORMATS)}",
            )
        secret_env = None
        if "secret_env" in entry:
            if format_ not in SIGNED_WEBHOOK_FORMATS:
                raise ConfigError(
                    source,
                    f"{key}.secret_env",
                    f"only {' and '.join(SIGNED_WEBHOOK_FORMATS)} webhooks are signed",
                )
            secret_env = _env_name(entry, "secret_env", "", source, key)
        webhooks.append(WebhookSettings(name, url_env, format_, secret_env))
    return AlertSettings(webhooks=tuple(webhooks), on=_alert_kinds(alerts, source))


def _alert_kinds(alerts: dict[Any, Any], source: str) -> tuple[str, ...]:
    kinds = alerts.get("on", list(ALERT_KINDS))
    if not isinstance(kinds, list):
        raise ConfigError(
            source, "alerts.on", f"must be a list of alert kinds: {', '.join(ALERT_KINDS)}"
        )
    for index, kind in enumerate(kinds):
        key = f"alerts.on[{index}]"
        if kind not in ALERT_KINDS:
            raise ConfigError(
                source, key, f"{short(kind)} is not a kind of alert; use {', '.join(ALERT_KINDS)}"
            )
        if kind in kinds[:index]:
            raise ConfigError(source, key, f"duplicate of alerts.on[{kinds.index(kind)}]")
    return tuple(kinds)


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
        key = f"stuck_after_minutes.{short_key(status)}"
        if not isinstance(status, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", status):
            raise ConfigError(source, key, "must be a status name like ASYNC_JOB_VALIDATING")
        thresholds[status] = _minutes(minutes, source, key)
    return thresholds


def _share(value: object, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(source, "max_gone_share", "must be a number from 0 to 1, like 0.2")
    return float(value)


def _seconds(value: object, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
        raise ConfigError(source, key, "must be a positive number of seconds, at most 86400")
    return float(value)


def _minutes(value: object, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(source, key, "must be a positive number of minutes")
    return float(value)


def _parse_projects(
    value: object, source: str, env: Mapping[str, str]
) -> tuple[ProjectSettings, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(source, "projects", "must be a non-empty list")
    projects: list[ProjectSettings] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        key = f"projects[{index}]"
        entry = _mapping(item, source, key)
        _reject_unknown_keys(entry, {"project_id", "region", "endpoint", "auth"}, source, key)
        project_id = _project_id(entry, source, key, seen)
        region = _required_string(entry, "region", source, key)
        if not REGION_PATTERN.fullmatch(region):
            raise ConfigError(source, f"{key}.region", "must look like cn-south-2")
        endpoint = entry.get("endpoint", default_endpoint(region))
        if not isinstance(endpoint, str):
            raise ConfigError(source, f"{key}.endpoint", "must be a URL string")
        # Projects may live in different accounts, each with its own credentials.
        auth = _parse_auth(entry["auth"], source, env, f"{key}.auth") if "auth" in entry else None
        projects.append(
            ProjectSettings(project_id, region, _validate_endpoint(endpoint, source, key), auth)
        )
    return tuple(projects)


def _project_id(entry: dict[str, Any], source: str, key: str, seen: dict[str, int]) -> str:
    """``entry``'s project id, checked and recorded in ``seen`` (id to index)."""
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
    seen[project_id] = len(seen)
    return project_id


def _validate_endpoint(endpoint: str, source: str, key: str, name: str = "endpoint") -> str:
    key = f"{key}.{name}"
    try:
        parts = urlsplit(endpoint.strip())
    except ValueError as exc:  # an unbalanced or invalid [IPv6] host
        raise ConfigError(source, key, f"is not a valid URL: {short(exc)}") from None
    if parts.scheme not in ("https", "http"):
        raise ConfigError(source, key, "must start with https:// (or http:// for loopback)")
    if not parts.hostname:
        raise ConfigError(source, key, "has no host")
    # A name or an address, nothing else: a space or a control character in the host
    # would only fail at request time, far from this file.
    if not HOST_PATTERN.fullmatch(parts.hostname):
        raise ConfigError(source, key, "has an invalid host: use a DNS name or an IP address")
    # No credentials, query or fragment: the path of each request is built by the client,
    # and anything else in the URL would be sent (or logged) where nobody expects it.
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(source, key, "must be scheme://host[:port][/path] only")
    if parts.path not in ("", "/"):
        raise ConfigError(source, key, "must not carry a path: the client appends the API path")
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


def _parse_auth(value: object, source: str, env: Mapping[str, str], prefix: str) -> AuthSettings:
    """``auth`` (or ``projects[i].auth``, named by ``prefix``) with its secrets from ``env``."""
    auth = _mapping(value, source, prefix)
    method = auth.get("method", "token")
    if not isinstance(method, str) or method not in AUTH_METHODS:
        raise ConfigError(
            source,
            f"{prefix}.method",
            f"{short(method)} is not supported; use one of {', '.join(AUTH_METHODS)}",
        )
    _reject_unknown_keys(auth, AUTH_KEYS[method], source, prefix)
    if method == "password":
        return _parse_password_auth(auth, source, env, prefix)
    if method == "aksk":
        return _parse_aksk_auth(auth, source, env, prefix)
    token_env = _env_name(auth, "token_env", DEFAULT_TOKEN_ENV, source, prefix)
    token = _secret_from_env(env, token_env, source, f"{prefix}.token_env")
    return TokenAuthSettings(token_env=token_env, token=token)


def _parse_password_auth(
    auth: dict[str, Any], source: str, env: Mapping[str, str], prefix: str
) -> PasswordAuthSettings:
    iam_endpoint = auth.get("iam_endpoint", DEFAULT_IAM_ENDPOINT)
    if not isinstance(iam_endpoint, str):
        raise ConfigError(source, f"{prefix}.iam_endpoint", "must be a URL string")
    password_env = _env_name(auth, "password_env", DEFAULT_PASSWORD_ENV, source, prefix)
    return PasswordAuthSettings(
        # The same rule as DRS endpoints: a password is never sent over plain
        # http, except to the simulator on loopback.
        iam_endpoint=_validate_endpoint(iam_endpoint, source, prefix, "iam_endpoint"),
        domain_name=_required_string(auth, "domain_name", source, prefix),
        user_name=_required_string(auth, "user_name", source, prefix),
        password_env=password_env,
        password=_secret_from_env(env, password_env, source, f"{prefix}.password_env"),
    )


def _parse_aksk_auth(
    auth: dict[str, Any], source: str, env: Mapping[str, str], prefix: str
) -> AkSkAuthSettings:
    ak_env = _env_name(auth, "ak_env", DEFAULT_AK_ENV, source, prefix)
    sk_env = _env_name(auth, "sk_env", DEFAULT_SK_ENV, source, prefix)
    ak = _secret_from_env(env, ak_env, source, f"{prefix}.ak_env")
    if not ACCESS_KEY_PATTERN.fullmatch(ak.reveal()):
        raise ConfigError(
            source,
            f"{prefix}.ak_env",
            f"{ak_env} does not hold an access key (printable ASCII, no spaces or commas)",
        )
    sk = _secret_from_env(env, sk_env, source, f"{prefix}.sk_env")
    # Temporary credentials come with a security token. The variable is optional
    # under its default name; named explicitly, it must be set.
    security_token_env = _env_name(
        auth, "security_token_env", DEFAULT_SECURITY_TOKEN_ENV, source, prefix
    )
    security_token: Secret | None = None
    if "security_token_env" in auth or env.get(security_token_env, "").strip():
        key = f"{prefix}.security_token_env"
        security_token = _secret_from_env(env, security_token_env, source, key)
        if not HEADER_VALUE_PATTERN.fullmatch(security_token.reveal()):
            raise ConfigError(
                source,
                key,
                f"{security_token_env} does not hold a security token (printable ASCII)",
            )
    return AkSkAuthSettings(
        ak_env=ak_env,
        sk_env=sk_env,
        ak=ak,
        sk=sk,
        security_token_env=security_token_env if security_token is not None else None,
        security_token=security_token,
    )


def _env_name(auth: dict[str, Any], name: str, default: str, source: str, prefix: str) -> str:
    value = auth.get(name, default)
    if not isinstance(value, str) or len(value) > 128 or not ENV_NAME_PATTERN.fullmatch(value):
        raise ConfigError(source, f"{prefix}.{name}", "must be an environment variable name")
    return value


def _secret_from_env(env: Mapping[str, str], name: str, source: str, key: str) -> Secret:
    # The value is never put in a message: only the variable's name is.
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(source, key, f"environment variable {name} is not set or empty")
    return Secret(value)


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
            key = f"{prefix}.{short_key(name)}" if prefix else short_key(name)
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
        raise ConfigError(source, key, f"must be from {low} to {high}, got {short(value)}")
    return value
