"""Scenario 5: the whole job as the daemon runs it, in process through Dagster.

The sync, every check, the marts, the publication and the alerts, over every
project's partition in one run, against a Dagster instance on disk: by default
a SQLite one configured as ``dagster_home/dagster.yaml`` (``make dev``), or
the one in ``--dagster-home`` (e.g. deploy/'s, on PostgreSQL). The ingest step
and the whole run are reported separately, from the run's own step statistics,
with the sync's own time inside the ingest step and the run's event count:
what Dagster's bookkeeping adds is in their differences.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from drs_pipeline.benchmarks.measure import Result

INGEST_STEP = "drs_sync"

# dagster_home/dagster.yaml's settings (tests/test_bench.py keeps them equal), for a
# temporary instance: the freshness evaluation and the one-writer pool cost events too.
INSTANCE_YAML = """\
telemetry:
  enabled: false
freshness:
  enabled: true
concurrency:
  runs:
    max_concurrent_runs: 1
  pools:
    default_limit: 1
"""


def prepare_dagster_home(folder: Path) -> Path:
    """A Dagster home in ``folder`` configured as the project's own."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    return folder


def published_copy(database: Path) -> Path:
    """Where a run into ``database`` publishes: beside it, apart from the real one's."""
    return database.with_suffix(".published")


def scheduled_run_once(
    config: str, database: str, dagster_home: str, token_env: str, token: str
) -> Result:
    """One run of ``drs_pipeline_job`` over every configured project: its wall time,
    each step's, the sync's own, and the number of events the run stored."""
    import dagster as dg

    from drs_pipeline.collector import bulk_allocation
    from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
    from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource
    from drs_pipeline.warehouse.store import connect

    os.environ[token_env] = token  # this measurement process's own environment
    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(config_path=config),
            "history_db": HistoryDatabaseResource(
                path=database, published_path=str(published_copy(Path(database)))
            ),
        }
    )
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        started = time.perf_counter()
        with bulk_allocation():  # as the command line and the daemon's runs set it
            result = execute_pipeline(
                definitions,
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
        seconds = time.perf_counter() - started
        if not result.success:
            failed = sorted({event.step_key or "" for event in result.get_step_failure_events()})
            raise RuntimeError(f"the scheduled run failed: steps {', '.join(failed)}")
        steps = {
            stats.step_key: (stats.end_time or 0.0) - (stats.start_time or 0.0)
            for stats in instance.get_run_step_stats(result.run_id)
        }
        events = len(instance.all_logs(result.run_id))
    with connect(Path(database), read_only=True) as con:
        (sync_s, rows, changed), *_ = con.execute(
            "SELECT epoch(max(finished_at) - min(started_at)), sum(jobs_seen), "
            "sum(new_jobs + changed_jobs + gone_jobs) "
            "FROM drs.sync_runs WHERE sync_id = (SELECT arg_max(sync_id, started_at) "
            "FROM drs.sync_runs)"
        ).fetchall()
    return {
        "seconds": seconds,
        "ingest_seconds": steps[INGEST_STEP],
        "sync_seconds": float(sync_s),
        "rows": int(rows),
        "changed": int(changed),
        "events": events,
        "steps": steps,
    }
