"""The batching writer (``warehouse.writer``): a failing project fails alone, what is
queued together is merged once nothing more can come, and a first sync does not wait."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from drs_pipeline.warehouse.merge import ProjectSync, SyncRunRow
from drs_pipeline.warehouse.normalize import Normalized
from drs_pipeline.warehouse.store import Warehouse
from drs_pipeline.warehouse.writer import BatchingWriter
from tests.helpers import T0, project_sync, rounds


def test_the_writer_lets_a_failing_project_fail_alone(tmp_path: Path) -> None:
    first = rounds()[0]
    bad = project_sync("s1", "d" * 32, {"d1": "V"}, T0)
    bad = replace(
        bad,
        normalized=Normalized(
            pd.concat([bad.normalized.jobs] * 2, ignore_index=True), bad.normalized.rejected
        ),
    )
    syncs = [*first, bad]

    async def land(warehouse: Warehouse) -> list[SyncRunRow | BaseException]:
        writer = BatchingWriter(warehouse, [s.run.project_id for s in syncs])
        return await asyncio.gather(*(writer.merge(s) for s in syncs), return_exceptions=True)

    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        results = asyncio.run(land(warehouse))
        assert [type(r).__name__ for r in results] == ["SyncRunRow"] * 3 + ["HistoryInvariantError"]
        assert warehouse.job_rows() == 3
        present = warehouse.connection.execute(
            "SELECT async_job_id FROM drs.async_jobs WHERE project_id = ? AND NOT is_gone",
            ["a" * 32],
        ).fetchall()
        assert {job_id for (job_id,) in present} == {"a1", "a2"}


def test_the_writer_merges_what_is_queued_together_once_nothing_more_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    syncs = rounds()[0]

    async def land(warehouse: Warehouse) -> None:
        original = warehouse.apply_project_syncs

        def counted(batch: list[ProjectSync]) -> list[SyncRunRow]:
            batches.append(len(batch))
            return original(batch)

        monkeypatch.setattr(warehouse, "apply_project_syncs", counted)
        # A history far larger than three times what is queued: nothing is enough to
        # merge before every project has queued or ended.
        writer = BatchingWriter(
            warehouse, [s.run.project_id for s in syncs] + ["x" * 32], history_jobs=10**6
        )
        waiting = [asyncio.ensure_future(writer.merge(s)) for s in syncs]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiting)  # "x" may still come
        writer.close_project("x" * 32)  # it will not (it failed, say)
        await asyncio.gather(*waiting)

    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        asyncio.run(land(warehouse))
    assert batches == [3]


def test_into_an_empty_history_the_first_project_lands_without_waiting(tmp_path: Path) -> None:
    first, *others = rounds()[0]

    async def land(warehouse: Warehouse) -> None:
        writer = BatchingWriter(warehouse, [s.run.project_id for s in [first, *others]])
        # The others are still listing: the first lands all the same (a first sync
        # merges as it goes, instead of waiting for a batch to fill).
        recorded = await asyncio.wait_for(writer.merge(first), timeout=30)
        assert recorded.new_jobs == len(first.normalized.jobs)
        assert warehouse.job_rows() == len(first.normalized.jobs)
        later = [asyncio.ensure_future(writer.merge(s)) for s in others]
        for sync in others:
            writer.close_project(sync.run.project_id)
        await asyncio.gather(*later)

    with Warehouse(tmp_path / "history.duckdb") as warehouse:
        asyncio.run(land(warehouse))
        assert warehouse.job_rows() == sum(len(s.normalized.jobs) for s in rounds()[0])
