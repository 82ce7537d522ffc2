"""The drs.yaml contract: what loads, and every error naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drs_pipeline.config import (
    REGION_PATTERN,
    AkSkAuthSettings,
    ConfigError,
    PasswordAuthSettings,
    Secret,
    TokenAuthSettings,
    WatchSettings,
    duckdb_path,
    load_schedule,
    load_settings,
    load_settings_file,
    load_watch,
    short,
)
from drs_pipeline.drs.regions import REGION_DOMAINS

PROJECT = "0123456789abcdef0123456789abcdef"
ENV = {"DRS_AUTH_TOKEN": "token-value"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drs.yaml"
    path.write_text(text)
    return path


def test_full_file_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
projects:
  - project_id: {PROJECT}
    region: cn-south-2
  - project_id: {"f" * 32}
    region: eu-west-101
    endpoint: https://drs.example.test:8443/
auth:
  method: token
  token_env: MY_TOKEN
page_size: 500
max_concurrency: 4
language: zh-cn
""",
    )
    settings = load_settings_file(path, {"MY_TOKEN": "t0k3n"})
    assert [p.endpoint for p in settings.projects] == [
        "https://drs.cn-south-2.myhuaweicloud.com",
        "https://drs.example.test:8443",
    ]
    assert settings.page_size == 500 and settings.max_concurrency == 4
    assert settings.language == "zh-cn" and settings.auth.token_env == "MY_TOKEN"
    assert settings.auth.token.reveal() == "t0k3n"
    assert "t0k3n" not in repr(settings) and "t0k3n" not in str(settings.auth)
    assert not settings.uses_embedded_simulator


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        # Listed by the SDK under .com: nearly every region, eu-west-0 included.
        ("cn-south-2", "https://drs.cn-south-2.myhuaweicloud.com"),
        ("eu-west-0", "https://drs.eu-west-0.myhuaweicloud.com"),
        # Listed under another domain.
        ("eu-west-101", "https://drs.eu-west-101.myhuaweicloud.eu"),
        # Not listed: the SDK's usual domain.
        ("eu-north-7", "https://drs.eu-north-7.myhuaweicloud.com"),
    ],
)
def test_default_endpoint_follows_the_sdk_region_table(
    tmp_path: Path, region: str, endpoint: str
) -> None:
    path = write(tmp_path, f"projects: [{{project_id: {PROJECT}, region: {region}}}]")
    assert load_settings_file(path, ENV).projects[0].endpoint == endpoint


def test_the_region_table_holds_the_sdk_regions_and_their_two_domains() -> None:
    assert len(REGION_DOMAINS) == 34
    assert set(REGION_DOMAINS.values()) == {"myhuaweicloud.com", "myhuaweicloud.eu"}
    assert [r for r, d in REGION_DOMAINS.items() if d != "myhuaweicloud.com"] == ["eu-west-101"]
    for region in REGION_DOMAINS:
        assert REGION_PATTERN.fullmatch(region), region


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\nfoo: 1", "foo", "unknown"),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2, zone: a}}]",
            "projects[0].zone",
            "unknown",
        ),
        ("projects: [{project_id: ABC, region: cn-south-2}]", "projects[0].project_id", "32"),
        (
            f"projects: [{{project_id: '{PROJECT.upper()}', region: cn-south-2}}]",
            "projects[0].project_id",
            "lowercase",
        ),
        (
            "projects: [{project_id: 12345678901234567890123456789012, region: cn-south-2}]",
            "projects[0].project_id",
            "quote",
        ),
        (
            f"projects:\n - {{project_id: {PROJECT}, region: cn-south-2}}\n"
            f" - {{project_id: {PROJECT}, region: cn-south-4}}",
            "projects[1].project_id",
            "duplicate of projects[0]",
        ),
        (f"projects: [{{project_id: {PROJECT}}}]", "projects[0].region", "required"),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2, "
            "endpoint: 'http://drs.example.com'}]",
            "projects[0].endpoint",
            "loopback",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2, "
            "endpoint: 'http://10.0.0.1:80'}]",
            "projects[0].endpoint",
            "loopback",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2, "
            "endpoint: 'https://evil.test/v5/other?x=1'}]",
            "projects[0].endpoint",
            "must",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2, "
            "endpoint: 'https://user:pw@drs.test'}]",
            "projects[0].endpoint",
            "host",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\npage_size: 1001",
            "page_size",
            "1 to 1000",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\npage_size: true",
            "page_size",
            "integer",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\nmax_concurrency: 0",
            "max_concurrency",
            "1 to 256",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\nlanguage: fr-fr",
            "language",
            "en-us",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\n"
            "auth: {method: token, token_env: MISSING_TOKEN}",
            "auth.token_env",
            "MISSING_TOKEN is not set",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\nauth: {{method: magic}}",
            "auth.method",
            "not supported",
        ),
        (
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\nauth: {{secret: x}}",
            "auth.secret",
            "unknown",
        ),
        ("projects: []", "projects", "non-empty"),
        ("page_size: 10", "projects", "required"),
        ("- just a list", "(top level)", "mapping"),
        ("projects: [unclosed", "(file)", "YAML"),
    ],
)
def test_invalid_configuration_names_file_and_key(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings_file(path, ENV)
    assert caught.value.key == key
    assert str(path) in str(caught.value) and key in str(caught.value)
    assert words in str(caught.value)


def test_missing_default_token_variable(tmp_path: Path) -> None:
    path = write(tmp_path, f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]")
    with pytest.raises(ConfigError, match="DRS_AUTH_TOKEN is not set"):
        load_settings_file(path, {})


def test_loopback_http_is_allowed(tmp_path: Path) -> None:
    for host in ("127.0.0.1:8600", "127.3.4.5", "localhost:1", "[::1]:80"):
        path = write(
            tmp_path,
            f"projects: [{{project_id: {PROJECT}, region: cn-south-2, endpoint: 'http://{host}'}}]",
        )
        assert load_settings_file(path, ENV).projects[0].endpoint == f"http://{host}"


def test_lookup_order(tmp_path: Path) -> None:
    explicit = tmp_path / "elsewhere.yaml"
    explicit.write_text(f"projects: [{{project_id: {PROJECT}, region: cn-south-4}}]")
    write(tmp_path, f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]")
    env = {**ENV, "DRS_CONFIG": str(explicit)}
    assert load_settings(env, cwd=tmp_path).projects[0].region == "cn-south-4"
    assert load_settings(ENV, cwd=tmp_path).projects[0].region == "cn-south-2"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_settings(ENV, cwd=empty).uses_embedded_simulator


def test_drs_config_pointing_nowhere_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DRS_CONFIG: no such configuration file"):
        load_settings({"DRS_CONFIG": str(tmp_path / "nope.yaml")}, cwd=tmp_path)


def test_database_path(tmp_path: Path) -> None:
    default = tmp_path / "data" / "drs_history.duckdb"
    assert duckdb_path({}, cwd=tmp_path) == default
    assert duckdb_path({"DRS_DUCKDB_PATH": str(tmp_path / "h.duckdb")}) == tmp_path / "h.duckdb"
    # A relative DRS_DUCKDB_PATH is relative to the current directory, like any path.
    assert duckdb_path({"DRS_DUCKDB_PATH": "x/h.duckdb"}, cwd=tmp_path) == tmp_path / "x/h.duckdb"


def test_drs_home_is_the_one_base_of_the_configuration_and_the_database(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    write(home, f"projects: [{{project_id: {PROJECT}, region: cn-south-4}}]")
    write(elsewhere, f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]")
    env = {**ENV, "DRS_HOME": str(home)}
    # The current directory no longer matters once DRS_HOME is set.
    assert load_settings(env, cwd=elsewhere).projects[0].region == "cn-south-4"
    assert load_settings(env, cwd=elsewhere).source == str(home / "drs.yaml")
    assert duckdb_path(env, cwd=elsewhere) == home / "data" / "drs_history.duckdb"
    # Without it, the current directory is the home of both.
    assert load_settings(ENV, cwd=elsewhere).projects[0].region == "cn-south-2"
    assert duckdb_path(ENV, cwd=elsewhere) == elsewhere / "data" / "drs_history.duckdb"
    # DRS_CONFIG and DRS_DUCKDB_PATH still win over the home folder.
    explicit = {**env, "DRS_CONFIG": str(elsewhere / "drs.yaml")}
    assert load_settings(explicit, cwd=home).projects[0].region == "cn-south-2"
    assert duckdb_path({**env, "DRS_DUCKDB_PATH": str(tmp_path / "h.duckdb")}) == (
        tmp_path / "h.duckdb"
    )
    # A home without drs.yaml: the embedded simulator, its database in that home.
    assert load_settings({"DRS_HOME": str(tmp_path)}, cwd=home).uses_embedded_simulator


# -- authentication: token, IAM password, AK/SK; per project ------------------------------

AKSK_ENV = {"HUAWEICLOUD_SDK_AK": "AKEXAMPLE0123", "HUAWEICLOUD_SDK_SK": "sk-secret-value"}
ONE_PROJECT = f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\n"


def test_aksk_auth_reads_the_sdk_variables(tmp_path: Path) -> None:
    path = write(tmp_path, ONE_PROJECT + "auth: {method: aksk}")
    settings = load_settings_file(path, AKSK_ENV)
    auth = settings.auth_for(settings.projects[0])
    assert isinstance(auth, AkSkAuthSettings)
    assert (auth.ak.reveal(), auth.sk.reveal()) == ("AKEXAMPLE0123", "sk-secret-value")
    assert auth.security_token is None and auth.security_token_env is None
    assert settings.projects[0].auth is auth
    for secret in AKSK_ENV.values():
        assert secret not in repr(settings) and secret not in str(auth)

    temporary = load_settings_file(
        path, {**AKSK_ENV, "HUAWEICLOUD_SDK_SECURITY_TOKEN": "sts-token"}
    ).auth
    assert isinstance(temporary, AkSkAuthSettings)
    assert temporary.security_token is not None
    assert temporary.security_token.reveal() == "sts-token"
    assert "sts-token" not in repr(temporary)


def test_aksk_variable_names_can_be_chosen(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ONE_PROJECT
        + "auth: {method: aksk, ak_env: MY_AK, sk_env: MY_SK, security_token_env: MY_ST}",
    )
    auth = load_settings_file(path, {"MY_AK": "AK1", "MY_SK": "SK1", "MY_ST": "ST1"}).auth
    assert isinstance(auth, AkSkAuthSettings)
    assert (auth.ak_env, auth.sk_env, auth.security_token_env) == ("MY_AK", "MY_SK", "MY_ST")
    assert auth.security_token == Secret("ST1")


def test_password_auth_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path, ONE_PROJECT + "auth: {method: password, domain_name: acme, user_name: bob}"
    )
    settings = load_settings_file(path, {"HUAWEICLOUD_IAM_PASSWORD": "pa55word"})
    auth = settings.auth
    assert isinstance(auth, PasswordAuthSettings)
    assert auth.iam_endpoint == "https://iam.myhuaweicloud.com"
    assert (auth.domain_name, auth.user_name, auth.password_env) == (
        "acme",
        "bob",
        "HUAWEICLOUD_IAM_PASSWORD",
    )
    assert auth.password.reveal() == "pa55word" and "pa55word" not in repr(settings)


def test_each_project_may_authenticate_its_own_way(tmp_path: Path) -> None:
    other, third = "a" * 32, "b" * 32
    path = write(
        tmp_path,
        f"""
projects:
  - {{project_id: {PROJECT}, region: cn-south-2}}
  - project_id: {other}
    region: cn-south-4
    auth: {{method: aksk, ak_env: OTHER_AK, sk_env: OTHER_SK}}
  - project_id: {third}
    region: cn-south-4
    auth:
      method: password
      iam_endpoint: http://127.0.0.1:8600
      domain_name: tenant-b
      user_name: reader
      password_env: TENANT_B_PASSWORD
auth: {{method: token, token_env: MY_TOKEN}}
""",
    )
    env = {"MY_TOKEN": "t", "OTHER_AK": "AK2", "OTHER_SK": "SK2", "TENANT_B_PASSWORD": "pw"}
    settings = load_settings_file(path, env)
    methods = [settings.auth_for(p).method for p in settings.projects]
    assert methods == ["token", "aksk", "password"]
    assert isinstance(settings.auth, TokenAuthSettings)
    assert settings.projects[0].auth is settings.auth
    third_auth = settings.projects[2].auth
    assert isinstance(third_auth, PasswordAuthSettings)
    assert third_auth.iam_endpoint == "http://127.0.0.1:8600"


def test_the_default_auth_is_not_required_when_every_project_has_its_own(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"projects: [{{project_id: {PROJECT}, region: cn-south-2, auth: {{method: aksk}}}}]",
    )
    settings = load_settings_file(path, AKSK_ENV)  # no DRS_AUTH_TOKEN anywhere
    assert settings.auth is None
    assert settings.auth_for(settings.projects[0]).method == "aksk"


@pytest.mark.parametrize(
    ("auth", "env", "key", "words"),
    [
        (
            "{method: aksk}",
            {"HUAWEICLOUD_SDK_SK": "s"},
            "auth.ak_env",
            "HUAWEICLOUD_SDK_AK is not set",
        ),
        (
            "{method: aksk}",
            {"HUAWEICLOUD_SDK_AK": "A"},
            "auth.sk_env",
            "HUAWEICLOUD_SDK_SK is not set",
        ),
        (
            "{method: aksk, security_token_env: MY_STS}",
            AKSK_ENV,
            "auth.security_token_env",
            "MY_STS is not set",
        ),
        ("{method: aksk, token_env: X}", AKSK_ENV, "auth.token_env", "unknown"),
        ("{method: aksk, sk_env: 9lives}", AKSK_ENV, "auth.sk_env", "environment variable name"),
        (
            "{method: aksk}",
            {**AKSK_ENV, "HUAWEICLOUD_SDK_AK": "AK,LEAKED"},
            "auth.ak_env",
            "does not hold an access key",
        ),
        (
            "{method: password, user_name: bob}",
            {"HUAWEICLOUD_IAM_PASSWORD": "p"},
            "auth.domain_name",
            "required",
        ),
        (
            "{method: password, domain_name: acme, user_name: bob}",
            {},
            "auth.password_env",
            "HUAWEICLOUD_IAM_PASSWORD is not set",
        ),
        (
            "{method: password, domain_name: acme, user_name: bob, "
            "iam_endpoint: 'http://iam.example.com'}",
            {"HUAWEICLOUD_IAM_PASSWORD": "p"},
            "auth.iam_endpoint",
            "loopback",
        ),
        (
            "{method: password, domain_name: acme, user_name: bob, "
            "iam_endpoint: 'https://iam.example.com/v3'}",
            {"HUAWEICLOUD_IAM_PASSWORD": "p"},
            "auth.iam_endpoint",
            "must not carry a path",
        ),
        (
            "{method: password, domain_name: acme, user_name: bob, ak_env: X}",
            {"HUAWEICLOUD_IAM_PASSWORD": "p"},
            "auth.ak_env",
            "unknown",
        ),
        ("{method: [aksk]}", AKSK_ENV, "auth.method", "not supported"),
    ],
)
def test_invalid_auth_names_the_key_and_never_the_secret(
    tmp_path: Path, auth: str, env: dict[str, str], key: str, words: str
) -> None:
    path = write(tmp_path, ONE_PROJECT + f"auth: {auth}")
    with pytest.raises(ConfigError) as caught:
        load_settings_file(path, env)
    assert caught.value.key == key and key in str(caught.value)
    assert words in str(caught.value)
    for value in env.values():
        if len(value) > 1:
            assert value not in str(caught.value)


@pytest.mark.parametrize(
    ("project_auth", "key", "words"),
    [
        ("{method: aksk, sk_env: THIRD_SK}", "projects[2].auth.sk_env", "THIRD_SK is not set"),
        ("{method: magic}", "projects[2].auth.method", "not supported"),
        ("{method: password, domain_name: d}", "projects[2].auth.user_name", "required"),
        ("{method: token, secret: x}", "projects[2].auth.secret", "unknown"),
    ],
)
def test_invalid_project_auth_names_the_project(
    tmp_path: Path, project_auth: str, key: str, words: str
) -> None:
    path = write(
        tmp_path,
        f"""
projects:
  - {{project_id: '{"1" * 32}', region: cn-south-2}}
  - {{project_id: '{"2" * 32}', region: cn-south-2}}
  - {{project_id: '{"3" * 32}', region: cn-south-2, auth: {project_auth}}}
""",
    )
    env = {**ENV, **AKSK_ENV, "HUAWEICLOUD_IAM_PASSWORD": "p"}
    with pytest.raises(ConfigError) as caught:
        load_settings_file(path, env)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_embedded_simulator_keeps_token_auth() -> None:
    settings = load_settings({}, cwd=Path("/nonexistent-dir-for-this-test"))
    assert settings.uses_embedded_simulator
    assert isinstance(settings.auth, TokenAuthSettings)
    assert {settings.auth_for(p).method for p in settings.projects} == {"token"}


# -- hostile files: alias bombs, huge values --------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs" value in flow style, its anchors inside it: 10**levels strings."""
    parts = ["&l0 lol"] + [
        f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)
    ]
    return "[" + ", ".join(parts) + "]"


def merge_bomb(levels: int = 9) -> str:
    """The same through merge keys, which PyYAML expands while it builds the mappings."""
    parts = ["&m0 {a: 1}"] + [
        f"&m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}" for i in range(1, levels + 1)
    ]
    return "[" + ", ".join(parts) + "]"


@pytest.mark.timeout(60)  # a safety net only: expanded, the bomb would take minutes and GBs
@pytest.mark.parametrize(
    ("text", "key"),
    [
        (ONE_PROJECT + f"auth: {{method: {alias_bomb()}}}", "auth.method"),
        (f"projects: [{{project_id: {PROJECT}, region: {alias_bomb()}}}]", "projects[0].region"),
        (ONE_PROJECT + f"schedule: {alias_bomb()}", "schedule"),
        (
            ONE_PROJECT + f"stuck_after_minutes: {{ASYNC_JOB_VALIDATING: {alias_bomb()}}}",
            "stuck_after_minutes.ASYNC_JOB_VALIDATING",
        ),
        (ONE_PROJECT + f"laughs: {alias_bomb()}", "laughs"),
        (ONE_PROJECT + f"auth: {{method: token, token_env: {merge_bomb()}}}", "auth.token_env"),
        (f"{alias_bomb()}", "(top level)"),
    ],
)
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    for load in (
        lambda: load_settings_file(path, ENV),
        lambda: load_schedule({"DRS_CONFIG": str(path)}),
    ):
        with pytest.raises(ConfigError) as caught:
            load()
        assert caught.value.key == key
        assert str(caught.value) == (
            f"{path}: {key}: expands to more than 100000 values through YAML aliases "
            "(an alias bomb?): refused; write the values out instead of nesting aliases"
        )


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
projects:
  - {{project_id: '{"1" * 32}', region: cn-south-2, auth: &partner {{method: token, token_env: P}}}}
  - {{project_id: '{"2" * 32}', region: cn-south-2, auth: *partner}}
auth: {{<<: *partner, token_env: DRS_AUTH_TOKEN}}
""",
    )
    settings = load_settings_file(path, {**ENV, "P": "p-token"})
    assert [p.auth.token_env for p in settings.projects] == ["P", "P"]
    assert settings.auth is not None and settings.auth.token_env == "DRS_AUTH_TOKEN"


def test_a_self_referring_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, ONE_PROJECT + "auth: &loop {method: token, token_env: *loop}")
    with pytest.raises(
        ConfigError, match=r"auth\.token_env: a YAML alias refers to auth, which contains it"
    ):
        load_settings_file(path, ENV)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (ONE_PROJECT + f"auth: {{method: {'x' * 100_000}}}", "auth.method"),
        (ONE_PROJECT + f"auth: {{method: [{', '.join(['aksk'] * 20_000)}]}}", "auth.method"),
        (ONE_PROJECT + f"page_size: {'9' * 4000}", "page_size"),
        (ONE_PROJECT + f"{'k' * 1000}: 1", "'" + "k" * 17 + "..." + "k" * 18 + "'"),
        (ONE_PROJECT + f"page_size: {'9' * 5000}", "(file)"),  # beyond Python's int limit
    ],
)
def test_an_error_quotes_a_bad_value_briefly(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings_file(path, ENV)
    assert caught.value.key == key
    # Bounded by our own text (an unknown key's message lists the allowed ones).
    assert len(caught.value.problem) < 300, caught.value.problem


def test_short_bounds_any_value() -> None:
    assert short("aksk") == "'aksk'"
    assert short("x" * 1000) == "'" + "x" * 17 + "..." + "x" * 18 + "'"
    nested: list[object] = ["lol"]
    for _ in range(30):
        nested = [nested] * 10
    assert len(short(nested)) <= 80
    assert short(ValueError("y" * 500), 50) == "y" * 47 + "..."


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, ONE_PROJECT + "#" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError, match=r"drs.yaml: \(file\): is larger than 1048576 bytes"):
        load_settings_file(path, ENV)


def test_the_keys_that_bound_what_a_server_is_believed_have_defaults_and_take_values(
    tmp_path: Path,
) -> None:
    minimal = f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\n"
    defaults = load_settings_file(write(tmp_path, minimal), ENV)
    assert (
        defaults.max_gone_share,
        defaults.max_absence_checks,
        defaults.max_jobs_per_project,
        defaults.request_timeout_s,
        defaults.sync_timeout_s,
    ) == (0.2, 100, 10_000_000, 60.0, 1800.0)
    chosen = load_settings_file(
        write(
            tmp_path,
            minimal
            + "max_gone_share: 1\nmax_absence_checks: 0\nmax_jobs_per_project: 500\n"
            + "request_timeout_s: 2.5\nsync_timeout_s: 600\n",
        ),
        ENV,
    )
    assert (
        chosen.max_gone_share,
        chosen.max_absence_checks,
        chosen.max_jobs_per_project,
        chosen.request_timeout_s,
        chosen.sync_timeout_s,
    ) == (1.0, 0, 500, 2.5, 600.0)


@pytest.mark.parametrize(
    ("line", "key", "problem"),
    [
        ("max_gone_share: 1.5", "max_gone_share", "must be a number from 0 to 1, like 0.2"),
        ("max_gone_share: yes", "max_gone_share", "must be a number from 0 to 1, like 0.2"),
        ("max_gone_share: '0.2'", "max_gone_share", "must be a number from 0 to 1, like 0.2"),
        ("max_absence_checks: -1", "max_absence_checks", "must be from 0 to 100000, got -1"),
        ("max_absence_checks: 2.5", "max_absence_checks", "must be an integer from 0 to 100000"),
        (
            "max_jobs_per_project: 0",
            "max_jobs_per_project",
            "must be from 1 to 1000000000, got 0",
        ),
        (
            "request_timeout_s: 0",
            "request_timeout_s",
            "must be a positive number of seconds, at most 86400",
        ),
        (
            "sync_timeout_s: 100000",
            "sync_timeout_s",
            "must be a positive number of seconds, at most 86400",
        ),
        (
            "sync_timeout_s: true",
            "sync_timeout_s",
            "must be a positive number of seconds, at most 86400",
        ),
    ],
)
def test_the_keys_that_bound_what_a_server_is_believed_are_validated(
    tmp_path: Path, line: str, key: str, problem: str
) -> None:
    path = write(tmp_path, f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings_file(path, ENV)
    assert str(caught.value) == f"{path}: {key}: {problem}"


def test_the_watch_has_defaults_and_takes_values(tmp_path: Path) -> None:
    minimal = f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\n"
    assert load_settings_file(write(tmp_path, minimal), ENV).watch == WatchSettings(
        statuses=("ASYNC_JOB_VALIDATING",), seconds=30
    )
    chosen = (
        minimal + "watch: {statuses: [ASYNC_JOB_VALIDATING, ASYNC_JOB_CREATING], seconds: 10}\n"
    )
    assert load_settings_file(write(tmp_path, chosen), ENV).watch == WatchSettings(
        statuses=("ASYNC_JOB_VALIDATING", "ASYNC_JOB_CREATING"), seconds=10
    )
    # An empty list turns the watch off.
    off = minimal + "watch: {statuses: []}\n"
    assert load_settings_file(write(tmp_path, off), ENV).watch == WatchSettings((), 30)


@pytest.mark.parametrize(
    ("line", "key", "problem"),
    [
        ("watch: 30", "watch", "must be a mapping of keys to values"),
        ("watch: {every: 30}", "watch.every", "unknown key; allowed here: seconds, statuses"),
        ("watch: {seconds: 0}", "watch.seconds", "must be from 1 to 86400, got 0"),
        ("watch: {seconds: 2.5}", "watch.seconds", "must be an integer from 1 to 86400"),
        (
            "watch: {statuses: ASYNC_JOB_VALIDATING}",
            "watch.statuses",
            "must be a list of status names, like [ASYNC_JOB_VALIDATING] ([] turns the watch off)",
        ),
        (
            "watch: {statuses: [validating]}",
            "watch.statuses[0]",
            "must be a status name like ASYNC_JOB_VALIDATING",
        ),
        (
            "watch: {statuses: [ASYNC_JOB_VALIDATING, COMMIT_SUCCESS]}",
            "watch.statuses[1]",
            "COMMIT_SUCCESS never changes again: watching it sharpens nothing",
        ),
        (
            "watch: {statuses: [ASYNC_JOB_VALIDATING, ASYNC_JOB_VALIDATING]}",
            "watch.statuses[1]",
            "duplicate of watch.statuses[0]",
        ),
    ],
)
def test_the_watch_is_validated(tmp_path: Path, line: str, key: str, problem: str) -> None:
    path = write(tmp_path, f"projects: [{{project_id: {PROJECT}, region: cn-south-2}}]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings_file(path, ENV)
    assert str(caught.value) == f"{path}: {key}: {problem}"
    # The same error when definitions load, which read only this key.
    with pytest.raises(ConfigError) as caught:
        load_watch({"DRS_CONFIG": str(path)})
    assert str(caught.value) == f"{path}: {key}: {problem}"


def test_load_watch_reads_only_the_watch(tmp_path: Path) -> None:
    # No credentials, no valid project: definitions load without them.
    path = write(tmp_path, "projects: []\nwatch: {seconds: 12}\n")
    assert load_watch({"DRS_CONFIG": str(path)}) == WatchSettings(seconds=12)
    assert load_watch({"DRS_HOME": str(tmp_path / "nowhere")}) == WatchSettings()
