"""Operating the product: the Dagster daemon runs the schedule, the webserver
serves the code location, and a browser renders the asset graph.

These start real processes (dagster-daemon, dagster-webserver, Chromium)
against a temporary DAGSTER_HOME and the simulator on loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from drs_pipeline.warehouse import catalog

from .helpers import Simulator, write_config

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HISTORY_ASSETS = {"async_jobs", "async_job_history", "sync_runs", "rejected_records"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return home


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_", "DAGSTER_"))}
    return {**env, **extra}


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def jobs_stored(database: Path) -> int:
    """Rows in drs.async_jobs, or -1 while the file is missing or being written."""
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            return int(con.execute("SELECT count(*) FROM drs.async_jobs").fetchall()[0][0])
    except (duckdb.IOException, duckdb.CatalogException):
        return -1


@pytest.mark.slow
def test_daemon_runs_the_schedule_and_the_history_grows(
    simulator: Simulator, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = simulator.project_ids[0]
    for _ in range(5):
        simulator.world.add_job(project_id)
    config = write_config(tmp_path / "drs.yaml", simulator, [project_id])
    with config.open("a") as file:
        file.write("schedule: '* * * * *'\n")  # the next minute boundary, not five
    home = dagster_home(tmp_path)
    env = clean_env(
        DAGSTER_HOME=str(home),
        DRS_CONFIG=str(config),
        DRS_AUTH_TOKEN=simulator.token,
        DRS_DUCKDB_PATH=str(database),
    )
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180  # one cron tick, a run worker, a sync
        while time.monotonic() < deadline and jobs_stored(database) < 5:
            assert daemon.poll() is None, "the daemon exited"
            time.sleep(2)
        assert jobs_stored(database) == 5
    finally:
        stop(daemon)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    assert runs and runs[-1].job_name == "drs_pipeline_job"
    assert runs[-1].tags.get("dagster/schedule_name") == "drs_pipeline_schedule"


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("webserver")
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(REPO / "workspace.yaml"),
        ],
        cwd=tmp_path,
        env=clean_env(DAGSTER_HOME=str(dagster_home(tmp_path))),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "dagster-webserver exited"
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "dagster-webserver did not come up"
            time.sleep(1)
        yield url
    finally:
        stop(process)


WORKSPACE_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name
    locationOrLoadError {
      __typename
      ... on PythonError { message }
      ... on RepositoryLocation { repositories {
        assetNodes {
          assetKey { path }
          description
          owners { ... on TeamAssetOwner { team } }
          tags { key value }
          metadataEntries {
            label
            ... on TextMetadataEntry { text }
            ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
          }
          assetChecksOrError { ... on AssetChecks { checks { name } } }
        }
        jobs { name description }
        schedules { name cronSchedule description scheduleState { status } }
      } }
    }
} } } }
"""


def test_webserver_loads_the_code_location_with_assets_checks_and_schedule(
    webserver: str,
) -> None:
    response = httpx.post(f"{webserver}/graphql", json={"query": WORKSPACE_QUERY}, timeout=60)
    (entry,) = response.json()["data"]["workspaceOrError"]["locationEntries"]
    location = entry["locationOrLoadError"]
    assert entry["name"] == "drs_pipeline"
    assert location["__typename"] == "RepositoryLocation", location.get("message")
    (repository,) = location["repositories"]
    assets = {tuple(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    assert {("drs", name) for name in HISTORY_ASSETS | {"status_counts", "job_durations"}} <= assets
    checks = {
        check["name"]
        for node in repository["assetNodes"]
        for check in node["assetChecksOrError"].get("checks", [])
    }
    assert {"history_invariants", "every_project_synced_ok", "no_stuck_jobs"} <= checks
    (schedule,) = repository["schedules"]
    assert schedule["name"] == "drs_pipeline_schedule"
    assert schedule["scheduleState"]["status"] == "RUNNING"
    assert schedule["description"] == (
        "Runs drs_pipeline_job on the cron of drs.yaml's `schedule` (UTC)."
    )
    jobs = {job["name"]: job["description"] for job in repository["jobs"]}
    assert jobs["drs_pipeline_job"] == (
        "Sync every configured DRS project, check the history, rebuild the marts."
    )


def test_the_catalog_shows_each_table_with_its_columns_owner_and_tags(webserver: str) -> None:
    response = httpx.post(f"{webserver}/graphql", json={"query": WORKSPACE_QUERY}, timeout=60)
    (entry,) = response.json()["data"]["workspaceOrError"]["locationEntries"]
    (repository,) = entry["locationOrLoadError"]["repositories"]
    nodes = {tuple(node["assetKey"]["path"]): node for node in repository["assetNodes"]}
    sync_runs = nodes[("drs", "sync_runs")]
    assert (
        sync_runs["description"] == "One row per project per sync: outcome, pages, counts, error."
    )
    assert sync_runs["owners"] == [{"team": "drs-pipeline"}]
    assert {(tag["key"], tag["value"]) for tag in sync_runs["tags"]} >= {
        ("domain", "drs"),
        ("layer", "ingest"),
    }
    entries = {entry["label"]: entry for entry in sync_runs["metadataEntries"]}
    assert entries["dagster/table_name"]["text"] == "drs.sync_runs"
    columns = entries["dagster/column_schema"]["schema"]["columns"]
    assert [(c["name"], c["type"]) for c in columns] == [
        (column.name, column.type) for column in catalog.SYNC_RUNS.columns
    ]
    assert columns[-1] == {
        "name": "server_clock_offset_s",
        "type": "DOUBLE",
        "description": catalog.table("sync_runs").columns[-1].description,
    }
    assert columns[-1]["description"].startswith("The API server's clock minus ours")
    for table in (*catalog.HISTORY, *catalog.MARTS):
        entries = {e["label"]: e for e in nodes[("drs", table.name)]["metadataEntries"]}
        assert entries["dagster/table_name"]["text"] == table.qualified_name


def test_browser_renders_the_asset_graph(webserver: str, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium)")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            # Large enough for the group and every downstream asset: the graph draws only
            # the nodes in view.
            "--window-size=2400,1800",
            # Let the single-page app fetch its data and lay out the graph.
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{webserver}/locations/drs_pipeline/asset-groups/ingest",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in HISTORY_ASSETS:
        assert name in done.stdout, f"{name} not on the rendered asset graph"
