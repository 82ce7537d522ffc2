"""The reading side: the published copy, the explore helpers, the notebook, and
readers and the writer never getting in each other's way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import nbclient
import nbformat
import pandas as pd
import pytest

from drs_pipeline import explore
from drs_pipeline.definitions import definitions_with_resources
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.publish import publish, published_path
from drs_pipeline.warehouse.store import WarehouseLockedError, connect

from .helpers import Simulator, another_process_holding, settings_for, sync

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "explore_jobs.ipynb"


def run_embedded_job(database: Path) -> dg.ExecuteInProcessResult:
    """The scheduled job on the embedded simulator: sync, marts, checks, publication."""
    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(embedded_simulator=True),
            "history_db": HistoryDatabaseResource(path=str(database)),
        }
    )
    with dg.instance_for_test() as instance:
        return definitions.resolve_job_def("drs_pipeline_job").execute_in_process(
            instance=instance, raise_on_error=False
        )


@pytest.fixture(scope="module")
def demo_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two real runs of the job a few seconds apart, so that jobs moved between them."""
    database = tmp_path_factory.mktemp("explore") / "history.duckdb"
    for _ in range(2):
        assert run_embedded_job(database).success
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DRS_DUCKDB_PATH", str(database))
        patch.delenv("DRS_PUBLISHED_PATH", raising=False)
        yield database


def direct(sql: str, params: list[object] | None = None) -> pd.DataFrame:
    with duckdb.connect(str(explore.database_path()), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params or []).df()


def same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        left.reset_index(drop=True), right.reset_index(drop=True), check_dtype=False
    )


def test_published_copy_lies_beside_the_database_and_says_when(demo_history: Path) -> None:
    assert explore.database_path() == demo_history.with_name("history_published.duckdb")
    publication = explore.publication()
    assert len(publication) == 1
    latest = direct("SELECT arg_max(sync_id, started_at) AS s FROM drs.sync_runs")["s"][0]
    assert publication["sync_id"][0] == latest


def test_helpers_return_what_the_contract_tables_hold(demo_history: Path) -> None:
    same(explore.status_counts(), direct("FROM drs.status_counts ORDER BY ALL"))
    same(explore.durations(), direct("FROM drs.job_durations ORDER BY ALL"))
    same(
        explore.stuck_jobs(),
        direct("FROM drs.stuck_jobs ORDER BY stuck_for_s DESC"),
    )
    project, domain = direct(
        "SELECT project_id, domain_name FROM drs.status_counts_by_project LIMIT 1"
    ).iloc[0]
    same(
        explore.status_counts(project_id=project, domain_name=domain),
        direct(
            "SELECT domain_name, user_name, status, jobs, as_of, stale "
            "FROM drs.status_counts_by_project "
            "WHERE project_id = ? AND domain_name = ? ORDER BY ALL",
            [project, domain],
        ),
    )
    by_project = explore.durations(metric="validation", project_id=project)
    same(
        by_project,
        direct(
            "FROM drs.job_durations_by_project WHERE metric = 'validation' AND project_id = ? "
            "ORDER BY ALL",
            [project],
        ),
    )
    job = direct("SELECT async_job_id FROM drs.async_job_history LIMIT 1")["async_job_id"][0]
    timeline = explore.job_timeline(job)
    assert list(timeline["status"]) == list(
        direct(
            "SELECT status FROM drs.async_job_history WHERE async_job_id = ? ORDER BY valid_from",
            [job],
        )["status"]
    )
    per_day = explore.jobs_created_per_day()
    assert per_day["jobs"].sum() == direct("SELECT count(*) AS n FROM drs.async_jobs")["n"][0]
    assert len(explore.sync_runs(limit=3)) == 3


def test_filters_are_values_not_sql(demo_history: Path) -> None:
    assert explore.status_counts(domain_name="x' OR '1'='1").empty


def test_missing_published_copy_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRS_PUBLISHED_PATH", str(tmp_path / "nope.duckdb"))
    with pytest.raises(FileNotFoundError, match="drs-pipeline demo"):
        explore.status_counts()


def test_notebook_runs_top_to_bottom_and_draws_every_chart(demo_history: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()
    charts = [c for c in notebook.cells if "chart" in c.metadata.get("tags", [])]
    assert len(charts) == 4
    for cell in charts:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, f"no image from cell:\n{cell.source[:200]}"
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []


def test_notebook_is_stored_without_outputs() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "nbstripout"), "--verify", str(NOTEBOOK)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, "run nbstripout on the notebook before committing"


READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
for line in sys.stdin:
    print(con.execute("SELECT sync_id FROM drs.publication").fetchall()[0][0], flush=True)
"""


def test_an_open_reader_never_blocks_a_run_and_keeps_answering(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project = simulator.project_ids[0]
    simulator.world.add_job(project)
    settings = settings_for(simulator, tmp_path, [project])
    copy = published_path({"DRS_DUCKDB_PATH": str(database)})

    def run() -> str:
        report = sync(simulator, settings, database)
        publish(database, copy, published_at=datetime.now(UTC))
        return report.sync_id

    first = run()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(copy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "open"
        simulator.world.add_job(project)
        simulator.clock.advance(60)
        second = run()  # the reader holds the published copy open throughout
        reader.stdin.write("query\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == first, "the open connection keeps answering"
        with duckdb.connect(str(copy), read_only=True) as fresh:
            assert fresh.execute("SELECT sync_id FROM drs.publication").fetchall()[0][0] == second
            assert fresh.execute("SELECT count(*) FROM drs.async_jobs").fetchall() == [(2,)]
    finally:
        reader.kill()
        reader.wait()


def test_a_writer_blocked_by_another_process_names_it(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    with connect(database):
        pass  # create the file
    settings = settings_for(simulator, tmp_path, simulator.project_ids[:1])
    with (
        another_process_holding(database) as holder,
        pytest.raises(WarehouseLockedError, match=rf"locked by process {holder}"),
    ):
        run_sync(settings, database, lock_timeout_s=1.0)
