"""The benchmark still runs, end to end, at a tiny size: its table, not its timings.

A benchmark, not a test of speed: nothing here compares a time with a target.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drs_pipeline import bench
from drs_pipeline.benchmarks.scheduled import INSTANCE_YAML
from drs_pipeline.benchmarks.table import COLUMNS, Row, Target, format_table


def test_the_benchmark_runs_every_scenario_and_prints_one_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--projects", "2", "--jobs-per-project", "200", "--page-size", "100"]
    assert bench.main([*argv, "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out.index(next(line for line in out if line.startswith("scenario")))
    lines = out[header:]
    assert lines[0].split() == " ".join(COLUMNS).split()
    assert set(lines[1]) == {"-", " "}
    rows = lines[2:]
    assert [row.split()[0] for row in rows] == ["1", "2", "3", "3", "4", "5", "5"]
    assert "cold sync" in rows[0] and "warm sync" in rows[1] and "changed" in rows[1]
    assert "fetch-only" in rows[0] and "fetch-only" in rows[1]
    assert "ceil(req/8) x 100 ms" in rows[2] and "sequential pager" in rows[3]
    assert "plain INSERT ... SELECT" in rows[4]
    assert rows[5].startswith("5 scheduled, cold ") and rows[5].split()[-2:] == ["-", "-"]
    assert rows[6].startswith("5 scheduled, nothing changed ")
    assert all("its ingest step" in row for row in rows[5:])
    for row in rows[:5] + rows[6:]:
        # Every row with a target ends with it and whether it was met.
        assert row.rstrip().endswith(("yes", "NO"))
    # Two projects of 200 jobs each, all of them landed by the cold sync and the cold run.
    assert rows[0].split()[3] == "400"
    assert rows[5].split()[3] == rows[6].split()[4] == "400"


def test_the_scheduled_scenario_configures_its_instance_as_the_project_does() -> None:
    project_home = Path(__file__).parents[1] / "dagster_home" / "dagster.yaml"
    assert yaml.safe_load(INSTANCE_YAML) == yaml.safe_load(project_home.read_text("utf-8"))


def test_the_table_aligns_its_columns() -> None:
    rows = [
        Row("1 cold sync", 1_000_000, 4.2, 1100, 600 * 2**20, "fetch-only", 3.0),
        Row(
            "4 merge 1% changed",
            10,
            0.5,
            None,
            None,
            "plain INSERT ... SELECT",
            0.25,
            (Target("< 1 s", True), Target("ratio <= 3", True)),
        ),
    ]
    text = format_table(rows).splitlines()
    assert len({len(line) for line in text[:2]}) == 1
    assert "238,095" in text[2] and "1.40" in text[2] and "600" in text[2]
    assert text[3].split()[-1] == "yes" and "2.00" in text[3] and " - " in text[3]
