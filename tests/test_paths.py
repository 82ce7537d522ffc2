"""Where the readers' copy and explicitly given files are: resolved in config only."""

from __future__ import annotations

from pathlib import Path

import pytest

from drs_pipeline import explore
from drs_pipeline.config import given_path, published_path
from drs_pipeline.defs.resources import HistoryDatabaseResource


def test_the_copy_lies_beside_the_database_unless_drs_published_path_says(tmp_path: Path) -> None:
    env = {"DRS_HOME": str(tmp_path)}
    assert published_path(env) == tmp_path / "data" / "drs_history_published.duckdb"
    env["DRS_DUCKDB_PATH"] = "h.db"
    assert published_path(env, cwd=tmp_path) == tmp_path / "h_published.db"
    assert (
        published_path(env, database=tmp_path / "x" / "y") == tmp_path / "x" / "y_published.duckdb"
    )
    env["DRS_PUBLISHED_PATH"] = "readers/copy.duckdb"
    assert published_path(env, cwd=tmp_path) == tmp_path / "readers" / "copy.duckdb"


def test_a_given_path_is_resolved_against_the_current_directory(tmp_path: Path) -> None:
    assert given_path("a/../b.duckdb", cwd=tmp_path) == tmp_path / "b.duckdb"
    assert given_path(str(tmp_path / "c.duckdb"), cwd=Path("/elsewhere")) == tmp_path / "c.duckdb"


def test_the_resource_and_explore_read_the_same_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRS_DUCKDB_PATH", "main.duckdb")
    monkeypatch.delenv("DRS_PUBLISHED_PATH", raising=False)
    resource = HistoryDatabaseResource()
    assert resource.resolved_path() == tmp_path / "main.duckdb"
    assert resource.resolved_published_path() == tmp_path / "main_published.duckdb"
    assert explore.database_path() == tmp_path / "main_published.duckdb"
    assert HistoryDatabaseResource(path="other.duckdb").resolved_path() == tmp_path / "other.duckdb"
