"""Resources: where to read DRS from, and the history database's connections.

Both resolve the environment when a run starts, never at import, so that
``dg check defs`` works anywhere and a run reports a missing variable itself.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from drs_pipeline.config import (
    ConfigError,
    ProjectLayout,
    Settings,
    duckdb_path,
    embedded_simulator_settings,
    given_path,
    load_layout,
    load_layout_file,
    load_settings,
    load_settings_file,
    published_path,
)
from drs_pipeline.warehouse.store import connect


class DrsApiResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The DRS projects to sync: ``DRS_CONFIG``, ``$DRS_HOME/drs.yaml``, else the embedded
    simulator."""

    # A configuration file to use instead of DRS_CONFIG / ./drs.yaml.
    config_path: str | None = None
    # Target the embedded simulator whatever the configuration says (the demo).
    embedded_simulator: bool = False

    def settings(self) -> Settings:
        if self.embedded_simulator:
            return embedded_simulator_settings()
        if self.config_path:
            return load_settings_file(Path(self.config_path))
        return load_settings()

    def layout(self) -> ProjectLayout:
        """The projects and freshness of ``settings()``, read without credentials."""
        if self.embedded_simulator:
            projects = embedded_simulator_settings().projects
            return ProjectLayout(tuple(project.project_id for project in projects))
        if self.config_path:
            return load_layout_file(Path(self.config_path))
        return load_layout()

    def settings_for_run(self) -> Settings:
        """``settings()`` for an asset: a configuration error fails the run, not retried
        (no retry fixes a file)."""
        try:
            return self.settings()
        except ConfigError as exc:
            raise configuration_failure(exc) from None


def configuration_failure(exc: ConfigError) -> dg.Failure:
    """A configuration error as a run's failure: not retried, no retry fixes a file."""
    return dg.Failure(description=f"configuration error: {exc}", allow_retries=False)


class HistoryDatabaseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The DuckDB history file: ``DRS_DUCKDB_PATH``, else ``data/drs_history.duckdb``
    in ``DRS_HOME`` (default: the current directory).

    Hands out connections as dagster-duckdb's ``DuckDBResource`` does
    (``get_connection()``), read-only when asked; the sync, the marts and the
    publication open the file themselves, through the warehouse package.
    """

    # A database file to use instead of DRS_DUCKDB_PATH.
    path: str | None = None
    # The readers' copy, instead of DRS_PUBLISHED_PATH (default: beside the database).
    published_path: str | None = None
    # How long a run waits for another process's lock on the file before failing.
    lock_timeout_s: float = 60.0

    def resolved_path(self) -> Path:
        return given_path(self.path) if self.path else duckdb_path()

    def resolved_published_path(self) -> Path:
        """``published_path``, else DRS_PUBLISHED_PATH, else beside the database."""
        if self.published_path:
            return given_path(self.published_path)
        return published_path(database=self.resolved_path())

    @contextmanager
    def get_connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the database for a ``with`` block, closed whatever happens;
        waits up to ``lock_timeout_s`` for another process's lock."""
        with connect(
            self.resolved_path(), read_only=read_only, lock_timeout_s=self.lock_timeout_s
        ) as con:
            yield con


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={"drs_api": DrsApiResource(), "history_db": HistoryDatabaseResource()}
    )
