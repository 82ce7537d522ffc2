"""Shared fixtures: the simulator served over loopback HTTP (scripted or streaming)
and a DuckDB file's path. Helper functions and classes are in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drs_pipeline.simulator import WorldSettings

from .helpers import Simulator, start_simulator
from .receiver import Receiver


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """Scripted jobs only (no stream), four projects; the clock moves when a test says."""
    settings = WorldSettings(seed=3, streaming=False, projects=())
    server, handle = start_simulator(settings)
    with server:
        yield handle


@pytest.fixture
def streaming_simulator() -> Iterator[Simulator]:
    """The generated world: jobs arriving, moving through their lifecycle, vanishing."""
    settings = WorldSettings(seed=11, speed=60.0)
    server, handle = start_simulator(settings)
    with server:
        yield handle


@pytest.fixture(autouse=True)
def no_dagster_state_storage_left_over() -> Iterator[None]:
    """Dagster keeps the state storage of the instance entered last in a context
    variable; left over by an earlier test whose instance is gone, it makes a later
    test's definitions fail to load on the dead instance's weakref."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "history.duckdb"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback, recording each request (tests/receiver.py)."""
    handle = Receiver()
    try:
        yield handle
    finally:
        handle.down()
