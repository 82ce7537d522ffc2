"""Operating the product: the Dagster daemon runs the schedule and judges freshness,
the webserver serves the code location, and a browser renders the asset graph, the
partitions and the freshness state.

These start real processes (dagster-daemon, dagster-webserver, Chromium)
against a temporary DAGSTER_HOME and the simulator on loopback.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from drs_pipeline.config import embedded_simulator_settings
from drs_pipeline.simulator.faults import ScriptedFault
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


def start_daemon(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """``dagster-daemon`` on the repository's workspace, as `make dev` runs it."""
    return subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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
    daemon = start_daemon(env, tmp_path)
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
    # Every configured project (here one) in the scheduled run.
    assert runs[-1].tags["dagster/asset_partition_range_start"] == project_id
    assert runs[-1].tags["dagster/asset_partition_range_end"] == project_id


@contextmanager
def serving(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """dagster-webserver on loopback for as long as the block runs; yields its URL."""
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
        cwd=cwd,
        env=env,
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


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("webserver")
    with serving(clean_env(DAGSTER_HOME=str(dagster_home(tmp_path))), tmp_path) as url:
        yield url


def need_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return CHROMIUM


def render(url: str, tmp_path: Path) -> str:
    """The page's DOM once headless Chromium let the single-page app fetch its data."""
    done = subprocess.run(
        [
            need_chromium(),
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
            # Let the single-page app fetch its data and lay out the page.
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_text(dom: str) -> str:
    """The words a reader sees, one space between the texts of elements."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


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
        "Runs drs_pipeline_job on the cron of drs.yaml's `schedule` (UTC), every project in "
        "one run."
    )
    jobs = {job["name"]: job["description"] for job in repository["jobs"]}
    assert jobs["drs_pipeline_job"] == (
        "Sync the selected DRS projects (a partition each; the schedule selects them all), "
        "check the history, rebuild the marts."
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
    dom = render(f"{webserver}/locations/drs_pipeline/asset-groups/ingest", tmp_path)
    for name in HISTORY_ASSETS:
        assert name in dom, f"{name} not on the rendered asset graph"
    # Without a configuration, the embedded simulator's projects: a partition each.
    projects = len(embedded_simulator_settings().projects)
    assert page_text(dom).count(f"Automation {projects} partitions") == len(HISTORY_ASSETS)


FRESHNESS_QUERY = """
query Freshness($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
  ... on AssetNode { freshnessStatusInfo { freshnessStatus } }
} }
"""
PARTITIONS_QUERY = """
query Partitions($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
  ... on AssetNode { assetPartitionStatuses {
    ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
  } }
} }
"""


def graphql(url: str, query: str, path: list[str]) -> dict[str, object]:
    answer = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": {"path": path}}, timeout=60
    ).json()
    node: dict[str, object] = answer["data"]["assetNodeOrError"]
    return node


def wait_for_freshness(url: str, status: str, deadline: float) -> None:
    """Until Dagster's API reads the history's freshness as ``status``."""
    seen = None
    while time.monotonic() < deadline:
        info = graphql(url, FRESHNESS_QUERY, ["drs", "async_jobs"])["freshnessStatusInfo"]
        seen = info["freshnessStatus"] if isinstance(info, dict) else None
        if seen == status:
            return
        time.sleep(2)
    raise AssertionError(f"freshness still {seen}, not {status}")


@pytest.mark.slow
def test_the_daemon_judges_the_history_stale_when_no_run_comes_and_the_ui_shows_it(
    simulator: Simulator, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sync with a refused project, then no run at all (a schedule that does not fire):
    the partitions page shows the refused project failed and the others materialized, and
    the daemon turns the freshness policy from passing to failed once freshness_minutes
    pass."""
    need_chromium()
    projects = simulator.project_ids[:3]
    refused = projects[1]
    for project_id in projects:
        simulator.world.add_job(project_id)
    config = write_config(
        tmp_path / "drs.yaml",
        simulator,
        projects,
        freshness_minutes=1,  # Dagster's shortest window
        schedule="'0 0 1 1 *'",  # not during the test: no run but the sync below
        watch="{statuses: []}",
    )
    home = dagster_home(tmp_path)
    env = clean_env(
        DAGSTER_HOME=str(home),
        DRS_CONFIG=str(config),
        DRS_AUTH_TOKEN=simulator.token,
        DRS_DUCKDB_PATH=str(database),
        # The freshness daemon's interval (30 s by default), so that the test waits less.
        FRESHNESS_DAEMON_INTERVAL_SECONDS="2",
    )
    simulator.faults.script(
        ScriptedFault(
            status=403,
            body={"error_code": "DRS.M00261", "error_msg": "Invalid project ID."},
            project_id=refused,
        )
    )
    # Before the sync: its materializations come later, and stale a minute after them.
    started = time.monotonic()
    synced = subprocess.run(
        [str(BIN / "drs-pipeline"), "sync"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert synced.returncode == 1, synced.stderr
    daemon = start_daemon(env, tmp_path)
    try:
        with serving(env, tmp_path) as url:
            wait_for_freshness(url, "HEALTHY", started + 55)
            partitions = graphql(url, PARTITIONS_QUERY, ["drs", "sync_runs"])
            assert partitions["assetPartitionStatuses"] == {
                "materializedPartitions": sorted(p for p in projects if p != refused),
                "failedPartitions": [refused],
            }
            text = page_text(render(f"{url}/assets/drs/sync_runs?view=partitions", tmp_path))
            assert "3 Partitions Selected Failed (1) Materialized (2)" in text
            assert all(project_id in text for project_id in projects)
            text = page_text(render(f"{url}/assets/drs/async_jobs", tmp_path))
            assert "Freshness policy Passing" in text

            # No run comes: a minute after the sync the daemon judges the history stale.
            wait_for_freshness(url, "DEGRADED", started + 180)
            assert time.monotonic() - started >= 60
            text = page_text(render(f"{url}/assets/drs/async_jobs", tmp_path))
            assert "Freshness policy Failed" in text
    finally:
        stop(daemon)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 1  # the command line's sync, nothing since
