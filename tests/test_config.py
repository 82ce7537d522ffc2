"""The drs.yaml contract: what loads, and every error naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drs_pipeline.config import (
    DEFAULT_DUCKDB_PATH,
    ConfigError,
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
