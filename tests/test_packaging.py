"""The package as a user installs it: not editable, away from the checkout.

Built from a copy of the package's sources (nothing else of the checkout), installed
into a fresh virtual environment, and run from another directory with only
``DRS_HOME`` saying where its files go. Dependencies come from the test's own
environment (a path entry, not an install), so the test needs no network and no
time for a resolver; the install itself is what pip does for any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .helpers import query

REPO = Path(__file__).resolve().parents[1]
# The embedded simulator's projects.
EMBEDDED_PROJECTS = 4


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_an_installed_wheel_syncs_the_embedded_simulator_into_drs_home(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(
        REPO / "drs_pipeline",
        source / "drs_pipeline",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site_packages = Path(
        sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    )
    # The test environment's packages on the path, after the venv's own.
    (site_packages / "test_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    installed = run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
        tmp_path,
        env,
    )
    assert installed.returncode == 0, installed.stderr

    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    env["DRS_HOME"] = str(home)
    where = run(
        [str(venv / "bin" / "python"), "-c", "import drs_pipeline; print(drs_pipeline.__file__)"],
        elsewhere,
        env,
    )
    assert Path(where.stdout.strip()).is_relative_to(site_packages), where.stdout + where.stderr

    # The sync itself, without Dagster: the default paths, the SQL shipped as package
    # data, the embedded simulator.
    code = (
        "from drs_pipeline.config import duckdb_path, load_settings; "
        "from drs_pipeline.sync import run_sync; "
        "report = run_sync(load_settings(), duckdb_path()); "
        "print(report.database, report.count('ok'))"
    )
    synced = run([str(venv / "bin" / "python"), "-c", code], elsewhere, env)
    assert synced.returncode == 0, synced.stderr
    database = home / "data" / "drs_history.duckdb"
    assert synced.stdout.split() == [str(database), str(EMBEDDED_PROJECTS)]

    # The command line: the Dagster job, then the readers' copy, read by `sql`.
    synced = run([str(venv / "bin" / "drs-pipeline"), "sync"], elsewhere, env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert f"into {database}" in synced.stdout
    assert query(
        database, "SELECT count(*), count(*) FILTER (outcome = 'ok') FROM drs.sync_runs"
    ) == [(2 * EMBEDDED_PROJECTS, 2 * EMBEDDED_PROJECTS)]
    counted = run(
        [
            str(venv / "bin" / "drs-pipeline"),
            "sql",
            "--csv",
            "SELECT count(*) AS n FROM drs.sync_runs",
        ],
        elsewhere,
        env,
    )
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.split() == ["n", str(2 * EMBEDDED_PROJECTS)]
    # Nothing written where the command ran.
    assert list(elsewhere.iterdir()) == []
