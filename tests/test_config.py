"""The drs.yaml contract: what loads, and every error naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drs_pipeline.config import (
    DEFAULT_DUCKDB_PATH,
    AkSkAuthSettings,
    ConfigError,
    PasswordAuthSettings,
    Secret,
    TokenAuthSettings,
    duckdb_path,
    load_settings,
    load_settings_file,
)

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


def test_eu_region_defaults_to_the_eu_domain(tmp_path: Path) -> None:
    path = write(tmp_path, f"projects: [{{project_id: {PROJECT}, region: eu-west-101}}]")
    settings = load_settings_file(path, ENV)
    assert settings.projects[0].endpoint == "https://drs.eu-west-101.myhuaweicloud.eu"


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
    assert duckdb_path({}) == DEFAULT_DUCKDB_PATH
    assert DEFAULT_DUCKDB_PATH.parent.name == "data"
    assert duckdb_path({"DRS_DUCKDB_PATH": str(tmp_path / "h.duckdb")}) == tmp_path / "h.duckdb"


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
