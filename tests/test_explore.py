"""The reading side: the published copy, the explore helpers, the notebook, and
readers and the writer never getting in each other's way."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import nbclient
import nbformat
import pandas as pd
import pytest

from drs_pipeline import charts, explore
from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
from drs_pipeline.drs.statuses import (
    COMMIT_SUCCESS,
    VALIDATE_FAILED,
    VALIDATE_SUCCESS,
    VALIDATING,
)
from drs_pipeline.simulator import WorldSettings
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.marts import build_marts
from drs_pipeline.warehouse.publish import publish, published_path
from drs_pipeline.warehouse.store import WarehouseLockedError, connect

from .helpers import Simulator, another_process_holding, settings_for, start_simulator, sync

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "explore_jobs.ipynb"
METRICS = ["validation", "time_to_commit"]
# The columns drs.job_durations has, which explore.duration_bounds computes alike.
JOB_DURATIONS = [
    "domain_name",
    "user_name",
    "metric",
    "jobs",
    "mean_s",
    "p50_s",
    "p90_s",
    "max_s",
    "in_progress",
    "resolution_s",
]
# The bounds explore.duration_bounds adds, and the columns checked by hand.
BOUNDS = ["p50_low_s", "p50_high_s", "p90_low_s", "p90_high_s"]
HAND = ["user_name", "jobs", "p50_s", *BOUNDS, "in_progress", "longest_in_progress_s"]


def run_embedded_job(database: Path) -> dg.ExecuteInProcessResult:
    """The scheduled job on the embedded simulator: sync, marts, checks, publication."""
    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(embedded_simulator=True),
            "history_db": HistoryDatabaseResource(path=str(database)),
        }
    )
    with dg.instance_for_test() as instance:
        return execute_pipeline(definitions, instance=instance, raise_on_error=False)


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs of the job a few seconds apart, so that jobs moved between them."""
    database = tmp_path_factory.mktemp("explore") / "history.duckdb"
    for _ in range(2):
        assert run_embedded_job(database).success
    return database


@pytest.fixture
def demo_history(demo_database: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's database, its published copy the one the explore helpers read."""
    monkeypatch.setenv("DRS_DUCKDB_PATH", str(demo_database))
    monkeypatch.delenv("DRS_PUBLISHED_PATH", raising=False)
    return demo_database


X = {"domain_name": "tenant-a", "user_name": "user-1"}
Y = {"domain_name": "tenant-b", "user_name": "user-2"}
Z = {"domain_name": "tenant-a", "user_name": "user-3"}


@dataclass(frozen=True)
class Scripted:
    copy: Path
    t0: float
    jobs: dict[str, str]

    def at(self, offset_s: float) -> datetime:
        return datetime.fromtimestamp(self.t0 + offset_s, UTC)


@pytest.fixture(scope="module")
def scripted_history(tmp_path_factory: pytest.TempPathFactory) -> Scripted:
    """Real syncs of jobs whose every move is known, 60 s apart: t0-120 (the history
    begins), t0, t1 = t0+60, t2 = t0+120, t3 = t0+180; the marts at t0+210 with a
    freshness of 2 minutes, for project 1 only.

    Project 1. Seen from their start (created after the first sync), validating at t0:
    A (tenant-a / user-1) validated at t1, committed at t3; B (user-1) failed at t1,
    validating again at t2, validated at t3; C (user-1) committed at t2, its success
    unseen between two syncs; D (user-1) validating throughout; E (tenant-b / user-2)
    failed at t1; G (user-2) gone at t1; M (tenant-a / user-3) failed at t2. H (user-2),
    created at t0+30, validating at t1, validated at t2. K (user-1), created at t0-40,
    first seen validated at t0. Not seen from its start: F (user-1), created long
    before the history began and validating in it, validated at t1 (perhaps a second
    round).
    Project 2, synced until t1 and then removed from the configuration (stale): Q
    (user-2), validating.
    """
    tmp = tmp_path_factory.mktemp("scripted")
    database = tmp / "history.duckdb"
    server, simulator = start_simulator(WorldSettings(seed=3, streaming=False, projects=()))
    with server:
        world = simulator.world
        first, second = simulator.project_ids[:2]
        t0 = simulator.clock.now()
        # No Date header, so no clock correction: create_time stays on the whole second.
        simulator.faults.no_date_header = True
        jobs: dict[str, tuple[str, str]] = {}
        for name, project, created, status, owner in [
            ("F", first, -1000, VALIDATING, X),
            ("A", first, -100, VALIDATING, X),
            ("B", first, -50, VALIDATING, X),
            ("C", first, -30, VALIDATING, X),
            ("D", first, -20, VALIDATING, X),
            ("K", first, -40, VALIDATE_SUCCESS, X),
            ("E", first, -10, VALIDATING, Y),
            ("G", first, -15, VALIDATING, Y),
            ("M", first, -5, VALIDATING, Z),
            ("H", first, 30, VALIDATING, Y),
            ("Q", second, -5, VALIDATING, Y),
        ]:
            job = world.add_job(project, create_time=t0 + created, status=status, **owner)
            jobs[name] = (project, job.async_job_id)
        both = settings_for(simulator, tmp, [first, second])
        simulator.clock.set(t0 - 120)
        assert sync(simulator, both, database).all_ok
        simulator.clock.set(t0)
        for projects, moves in [
            ([first, second], []),
            (
                [first, second],
                [
                    ("A", VALIDATE_SUCCESS),
                    ("B", VALIDATE_FAILED),
                    ("E", VALIDATE_FAILED),
                    ("G", None),
                    ("F", VALIDATE_SUCCESS),
                ],
            ),
            (
                [first],
                [
                    ("B", VALIDATING),
                    ("C", COMMIT_SUCCESS),
                    ("H", VALIDATE_SUCCESS),
                    ("M", VALIDATE_FAILED),
                ],
            ),
            ([first], [("B", VALIDATE_SUCCESS), ("A", COMMIT_SUCCESS)]),
        ]:
            for name, status in moves:
                if status is None:
                    world.vanish(*jobs[name])
                else:
                    world.set_status(*jobs[name], status)
            assert sync(simulator, settings_for(simulator, tmp, projects), database).all_ok
            simulator.clock.advance(60)
    as_of = datetime.fromtimestamp(t0 + 210, UTC)
    build_marts(
        database,
        stuck_thresholds_s={VALIDATE_SUCCESS: 3600.0},
        as_of=as_of,
        configured_projects={first: "cn-south-2"},
        freshness_minutes=2,
    )
    copy = tmp / "copy.duckdb"
    publish(database, copy, published_at=as_of)
    return Scripted(copy, t0, {name: job_id for name, (_, job_id) in jobs.items()})


@pytest.fixture
def scripted(scripted_history: Scripted, monkeypatch: pytest.MonkeyPatch) -> Scripted:
    """The scripted history's copy, the one the explore helpers read."""
    monkeypatch.setenv("DRS_PUBLISHED_PATH", str(scripted_history.copy))
    return scripted_history


def direct(sql: str, params: list[object] | None = None) -> pd.DataFrame:
    with duckdb.connect(str(explore.database_path()), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params or []).df()


def rows(frame: pd.DataFrame, columns: list[str]) -> list[list[object]]:
    """The frame's values, row by row, NULL as None (not NaN, which equals nothing)."""
    picked = frame[columns].astype(object)
    return picked.where(picked.notna(), None).to_numpy().tolist()


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


def test_filters_of_the_new_helpers_are_values_not_sql(scripted: Scripted) -> None:
    sneaky = "x' OR '1'='1"
    assert explore.duration_bounds(domain_name=sneaky).empty
    assert explore.duration_samples(user_name=sneaky).empty
    assert explore.validation_pass_rate(project_id=sneaky).empty
    assert explore.backlog(domain_name=sneaky).empty
    with pytest.raises(ValueError, match='by must be "user" or "tenant"'):
        explore.validation_pass_rate(by="users")  # type: ignore[arg-type]


@pytest.mark.parametrize("copy", ["demo_history", "scripted"])
def test_duration_bounds_are_job_durations_with_the_bounds_of_each_percentile(
    copy: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(copy)
    bounds = explore.duration_bounds()
    same(bounds[JOB_DURATIONS], direct("FROM drs.job_durations ORDER BY ALL"))
    same(
        bounds.loc[bounds["jobs"] > 0, ["domain_name", "user_name", "metric", *BOUNDS]],
        direct(
            "SELECT domain_name, user_name, metric, "
            "quantile_cont(low_s, 0.5), quantile_cont(high_s, 0.5), "
            "quantile_cont(low_s, 0.9), quantile_cont(high_s, 0.9) "
            "FROM drs.duration_samples GROUP BY ALL ORDER BY ALL"
        ).set_axis(["domain_name", "user_name", "metric", *BOUNDS], axis=1),
    )
    same(
        bounds.loc[bounds["in_progress"] > 0, ["domain_name", "user_name", "metric"]].assign(
            longest_in_progress_s=bounds["longest_in_progress_s"]
        ),
        direct(
            "SELECT domain_name, user_name, metric, max(low_s) AS longest_in_progress_s "
            "FROM drs.durations_in_progress GROUP BY ALL ORDER BY ALL"
        ),
    )
    same(
        explore.duration_samples(),
        direct("FROM drs.duration_samples ORDER BY metric, seconds, project_id, async_job_id"),
    )


def test_duration_bounds_per_user_and_per_tenant_on_the_scripted_history(
    scripted: Scripted,
) -> None:
    # validation (low, high, midpoint in s): A 100..160 (130), B 50..110 (80),
    # C 90..150 (120), K 0..40 (20: validated between its creation and its first
    # observation) of user-1, who also has D still validating, 200 s so far at t3;
    # M 65..125 (95) of user-3; E 10..70 (40), H 30..90 (60) of user-2. F was first
    # seen validating long after its creation: not a sample.
    per_user = explore.duration_bounds(metric="validation")
    assert rows(per_user, HAND) == [
        ["user-1", 4, 100.0, 70.0, 130.0, 97.0, 157.0, 1, 200.0],
        ["user-3", 1, 95.0, 65.0, 125.0, 65.0, 125.0, 0, None],
        ["user-2", 2, 50.0, 20.0, 80.0, 28.0, 88.0, 0, None],
    ]
    assert list(per_user["resolution_s"]) == [60.0, 60.0, 60.0]
    per_tenant = explore.duration_bounds(metric="validation", by="tenant")
    assert rows(per_tenant, ["domain_name", *HAND]) == [
        ["tenant-a", None, 5, 95.0, 65.0, 125.0, 96.0, 156.0, 1, 200.0],
        ["tenant-b", None, 2, 50.0, 20.0, 80.0, 28.0, 88.0, 0, None],
    ]
    # Jobs created from t0 on: H alone (created at t0+30); before t0: all but H.
    later = explore.duration_bounds(metric="validation", created_from=scripted.at(0))
    assert rows(later, HAND) == [["user-2", 1, 60.0, 30.0, 90.0, 30.0, 90.0, 0, None]]
    earlier = explore.duration_bounds(
        metric="validation", created_to=scripted.at(0).isoformat(), by="tenant"
    )
    assert list(earlier["jobs"]) == [5, 1]
    samples = explore.duration_samples(metric="validation", created_from=scripted.at(0))
    assert list(samples["async_job_id"]) == [scripted.jobs["H"]]


def test_first_time_validation_pass_rate_on_the_scripted_history(scripted: Scripted) -> None:
    columns = ["left_validating", "passed", "failed", "other", "pass_rate", "still_validating"]
    per_user = explore.validation_pass_rate()
    # user-1: A validated, C committed (a success unseen between syncs), K validated
    # before its first observation, B failed (its later success is a second round); D
    # validating. user-3: M failed. user-2: E
    # failed, H validated; G left the list while validating: no verdict.
    assert rows(per_user, ["domain_name", "user_name", *columns]) == [
        ["tenant-a", "user-1", 4, 3, 1, 0, 0.75, 1],
        ["tenant-a", "user-3", 1, 0, 1, 0, 0.0, 0],
        ["tenant-b", "user-2", 2, 1, 1, 0, 0.5, 0],
    ]
    per_tenant = explore.validation_pass_rate(by="tenant")
    assert rows(per_tenant, ["domain_name", "user_name", *columns]) == [
        ["tenant-a", None, 5, 3, 2, 0, 0.6, 1],
        ["tenant-b", None, 2, 1, 1, 0, 0.5, 0],
    ]
    # F's first row has a not_before (its create_time: first seen validating), yet it
    # was created long before the history began and may have failed a round unseen:
    # counting every first row with a not_before would make user-1's 4 of 5.
    first_row = direct(
        "SELECT to_status, not_before IS NOT NULL AS bounded FROM drs.status_transitions "
        "WHERE async_job_id = ? AND from_status IS NULL",
        [scripted.jobs["F"]],
    )
    assert first_row.to_dict("records") == [{"to_status": VALIDATING, "bounded": True}]
    later = explore.validation_pass_rate(created_from=scripted.at(0))
    assert rows(later, ["user_name", *columns]) == [["user-2", 1, 1, 0, 0, 1.0, 0]]


@pytest.mark.parametrize("copy", ["demo_history", "scripted"])
def test_pass_rate_counts_the_jobs_the_validation_metric_measures(
    copy: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(copy)
    rates = explore.validation_pass_rate()
    counts = direct(
        "SELECT domain_name, user_name, jobs AS left_validating, in_progress AS still_validating "
        "FROM drs.job_durations WHERE metric = 'validation' ORDER BY ALL"
    )
    same(rates[["domain_name", "user_name", "left_validating", "still_validating"]], counts)
    # Each measured job's earliest move out of validating.
    first_exits = direct(
        "SELECT to_status, count(*) AS jobs FROM ("
        "  SELECT arg_min(t.to_status, t.not_after) AS to_status"
        "  FROM drs.status_transitions AS t"
        "  JOIN drs.duration_samples AS s USING (project_id, async_job_id)"
        "  WHERE s.metric = 'validation' AND (t.from_status = 'ASYNC_JOB_VALIDATING'"
        "    OR (t.from_status IS NULL AND t.to_status <> 'ASYNC_JOB_VALIDATING'))"
        "  GROUP BY project_id, async_job_id"
        ") GROUP BY ALL"
    )
    exits = dict(zip(first_exits["to_status"], first_exits["jobs"], strict=True))
    assert rates["passed"].sum() == exits.get(VALIDATE_SUCCESS, 0) + exits.get(COMMIT_SUCCESS, 0)
    assert rates["failed"].sum() == exits.get(VALIDATE_FAILED, 0)


def test_backlog_at_chosen_instants_equals_a_hand_count(scripted: Scripted) -> None:
    def at(offset_s: float) -> dict[str, int]:
        instant = scripted.at(offset_s)
        frame = explore.backlog(start=instant, end=instant)
        assert set(frame["instant"]) == {pd.Timestamp(instant)}
        return {s: n for s, n in zip(frame["status"], frame["jobs"], strict=True) if n}

    # The history begins: F alone.
    assert at(-120) == {VALIDATING: 1}
    # t0: A B C D E G M F in project 1 and Q in project 2 validating; K validated.
    assert at(0) == {VALIDATING: 9, VALIDATE_SUCCESS: 1}
    # Just before t1, nothing seen to change yet.
    assert at(59.5) == {VALIDATING: 9, VALIDATE_SUCCESS: 1}
    # t1: A, F validated; B, E failed; G found gone (no longer counts); C D H M and Q
    # validating, Q's project seen for the last time.
    assert at(60) == {VALIDATING: 5, VALIDATE_FAILED: 2, VALIDATE_SUCCESS: 3}
    # Later, Q's project is stale and removed: nobody has seen Q since t1, so Q stops
    # counting rather than staying in the backlog for ever.
    assert at(90) == {VALIDATING: 4, VALIDATE_FAILED: 2, VALIDATE_SUCCESS: 3}
    # t3, the last observation: what drs.status_counts holds now.
    assert at(180) == {VALIDATING: 1, VALIDATE_FAILED: 2, VALIDATE_SUCCESS: 4, COMMIT_SUCCESS: 2}
    present = direct("SELECT status, sum(jobs)::INTEGER AS n FROM drs.status_counts GROUP BY ALL")
    assert at(180) == dict(zip(present["status"], present["n"], strict=True))
    # Nothing is known after the last observation.
    assert at(181) == {}


def counted_from_intervals(instants: list[pd.Timestamp]) -> pd.DataFrame:
    """The backlog counted in pandas from the history and drs.project_status."""
    h = direct(
        "SELECT h.status, h.valid_from, h.valid_to, h.last_seen_at, "
        "coalesce(p.configured AND NOT p.stale, false) AS watched, p.last_ok_sync_at "
        "FROM drs.async_job_history AS h LEFT JOIN drs.project_status AS p USING (project_id)"
    )
    last = max(h["valid_to"].max(), h["last_seen_at"].max())
    last_look = pd.concat([h["last_seen_at"], h["last_ok_sync_at"]], axis=1).max(axis=1)
    until = last_look.where(~h["watched"], last)
    rows = []
    for instant in instants:
        inside = (h["valid_from"] <= instant) & (
            (h["valid_to"] > instant) | (h["valid_to"].isna() & (until >= instant))
        )
        for status in sorted(h["status"].unique()):
            rows.append((instant, status, int((inside & (h["status"] == status)).sum())))
    return pd.DataFrame(rows, columns=["instant", "status", "jobs"])


@pytest.mark.parametrize("copy", ["demo_history", "scripted"])
def test_backlog_is_a_count_of_the_intervals_at_each_instant(
    copy: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(copy)
    backlog = explore.backlog()
    instants = sorted(backlog["instant"].unique())
    span = direct(
        "SELECT min(valid_from) AS first, max(coalesce(valid_to, last_seen_at)) AS last "
        "FROM drs.async_job_history"
    ).iloc[0]
    # From the first observation to the last, in whole seconds, about 100 steps.
    step = timedelta(seconds=max(1, -(-(span["last"] - span["first"]).total_seconds() // 100)))
    assert instants[-1] == span["last"]
    assert instants[0] - step < span["first"] <= instants[0]
    assert all(b - a == step for a, b in itertools.pairwise(instants))
    same(backlog, counted_from_intervals(instants))


def test_backlog_takes_its_window_and_step(scripted: Scripted) -> None:
    minutely = explore.backlog(every="1min")
    assert sorted(minutely["instant"].unique()) == [
        pd.Timestamp(scripted.at(s)) for s in (-120, -60, 0, 60, 120, 180)
    ]
    # Text without an offset is UTC; the instants run back from the end.
    start = scripted.at(0).replace(tzinfo=None).isoformat()
    window = explore.backlog(every=timedelta(seconds=45), start=start, end=scripted.at(100))
    assert sorted(window["instant"].unique()) == [
        pd.Timestamp(scripted.at(s)) for s in (10, 55, 100)
    ]
    assert explore.backlog(start=scripted.at(10), end=scripted.at(0)).empty
    with pytest.raises(ValueError, match="positive"):
        explore.backlog(every="0s")
    with pytest.raises(ValueError, match="at most 10000"):
        explore.backlog(every="1ms")


def run_notebook(parameters: str | None = None) -> list[tuple[int, list[str]]]:
    """Run the notebook through a kernel of this environment; for each chart cell, the
    images it drew and what it said it had nothing to draw. ``parameters`` go in a
    cell after the one tagged ``parameters``, as papermill injects them."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    if parameters is not None:
        (index,) = [
            i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
        ]
        injected = nbformat.v4.new_code_cell(parameters)
        injected.metadata["tags"] = ["injected-parameters"]
        notebook.cells.insert(index + 1, injected)
    client = nbclient.NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    drawn = []
    for cell in notebook.cells:
        if "chart" not in cell.metadata.get("tags", []):
            continue
        images = sum("image/png" in o.get("data", {}) for o in cell.outputs)
        text = "".join(o.text for o in cell.outputs if o.output_type == "stream")
        said = [
            line.removeprefix(f"{charts.NOTHING_TO_DRAW}: ").split(": ")[0]
            for line in text.splitlines()
            if line.startswith(charts.NOTHING_TO_DRAW)
        ]
        drawn.append((images, said))
    return drawn


def test_notebook_draws_every_chart_of_a_history_with_durations(scripted: Scripted) -> None:
    # Status counts, backlog, durations per tenant and per user (validation and
    # time_to_commit each), their distributions, pass rate per tenant and per user,
    # jobs per day, one job's timeline.
    assert run_notebook() == [
        (1, []),
        (1, []),
        (2, []),
        (2, []),
        (2, []),
        (2, []),
        (1, []),
        (1, []),
    ]


def test_notebook_on_the_demo_says_what_it_cannot_draw_yet(demo_history: Path) -> None:
    """The demo's history spans seconds: few durations, if any, and the notebook says so."""
    tenant, user = explore.duration_bounds(by="tenant"), explore.duration_bounds()
    samples, rates = explore.duration_samples(), explore.validation_pass_rate()

    def split(measured: list[str], what: str) -> tuple[int, list[str]]:
        return len(measured), [what.format(m) for m in METRICS if m not in measured]

    def measured(frame: pd.DataFrame, column: str) -> list[str]:
        return [m for m in METRICS if frame.loc[frame["metric"] == m, column].sum() > 0]

    verdicts = (rates["passed"] + rates["failed"]).sum() > 0
    assert run_notebook() == [
        (1, []),
        (1, []),
        split(measured(tenant, "jobs"), "{} per tenant"),
        split(measured(user, "jobs"), "{} per tenant / user"),
        split(measured(samples.assign(n=1), "n"), "distribution of {}"),
        (2, [])
        if verdicts
        else (
            0,
            [
                "first-time validation pass rate per tenant",
                "first-time validation pass rate per tenant / user",
            ],
        ),
        (1, []),
        (1, []),
    ]


def test_notebook_with_filters_that_match_nothing_draws_nothing_and_says_why(
    scripted: Scripted,
) -> None:
    assert run_notebook('user_name = "nobody"') == [
        (0, ["jobs by status"]),
        (0, ["backlog over time"]),
        (0, ["validation per tenant", "time_to_commit per tenant"]),
        (0, ["validation per tenant / user", "time_to_commit per tenant / user"]),
        (0, ["distribution of validation", "distribution of time_to_commit"]),
        (
            0,
            [
                "first-time validation pass rate per tenant",
                "first-time validation pass rate per tenant / user",
            ],
        ),
        (0, ["jobs created per day"]),
        (0, ["a job's timeline"]),
    ]


def test_notebook_parameters_cell_holds_the_filters_and_the_window() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert assigned == dict.fromkeys(
        ["project_id", "domain_name", "user_name", "start", "end", "every", "job_id"]
    )
    assert notebook.cells.index(cell) == 1, "the parameters come first, after the title"


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
