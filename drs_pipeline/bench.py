"""``drs-pipeline bench``: how close a sync runs to the limits of the API and of DuckDB.

Five scenarios (see ``drs_pipeline.benchmarks``), each compared with a bound
measured or computed in the same run, printed as one table:

1. cold sync of ``projects x jobs_per_project`` jobs into an empty database,
   against a client that only downloads and JSON-decodes the same pages;
2. the same world a little later (about 2 % of the jobs changed), same bound;
3. 100 ms on every response, against perfect overlap of ``max_concurrency``
   requests and against paging one request at a time;
4. the SCD2 merge of a snapshot with 1 % changes, against a plain insert;
5. the whole scheduled job in process through Dagster (sync, checks, marts,
   publication, alerts), cold and then with nothing changed, against its own
   ingest step.

A benchmark, not a test: it reports whether each target was met and exits 0
either way (1 only if a scenario could not run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from drs_pipeline.benchmarks.scenarios import (
    Log,
    Scale,
    cold_and_warm,
    latency_bound,
    merge_only,
    scheduled,
)
from drs_pipeline.benchmarks.table import Row, format_table

SCENARIOS: dict[str, Callable[[Scale, Path, Log], list[Row]]] = {
    "sync": cold_and_warm,
    "latency": latency_bound,
    "merge": merge_only,
    "scheduled": scheduled,
}
QUICK = Scale(projects=20, jobs_per_project=2_000)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The options; ``parser`` lets the ``drs-pipeline bench`` subcommand reuse them."""
    parser = parser or argparse.ArgumentParser(prog="drs-pipeline bench", description=__doc__)
    full = Scale()
    parser.add_argument(
        "--projects", type=int, help=f"projects of scenarios 1, 2, 4, 5 (default {full.projects})"
    )
    parser.add_argument(
        "--jobs-per-project",
        type=int,
        help=f"jobs of each project (default {full.jobs_per_project:,}); "
        "scenario 3 uses a fifth of the projects with half the jobs",
    )
    parser.add_argument(
        "--page-size", type=int, default=full.page_size, help="limit of each request"
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=full.max_concurrency, help="requests in flight"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK.projects} projects x {QUICK.jobs_per_project:,} jobs unless given",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only these: sync (1 and 2), latency (3), merge (4), scheduled (5); repeatable",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="take each measurement this many times and keep the fastest (default 1)",
    )
    parser.add_argument("--work-dir", type=Path, help="where the databases go (default: temporary)")
    parser.add_argument(
        "--dagster-home",
        type=Path,
        help="the Dagster instance of scenario 5, e.g. one on PostgreSQL (default: a "
        "temporary SQLite one configured as dagster_home/dagster.yaml)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    base = QUICK if args.quick else Scale()
    scale = Scale(
        projects=args.projects or base.projects,
        jobs_per_project=args.jobs_per_project or base.jobs_per_project,
        page_size=args.page_size,
        max_concurrency=args.max_concurrency,
        repeat=args.repeat,
        dagster_home=args.dagster_home,
    )
    chosen = args.scenario or list(SCENARIOS)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    rows: list[Row] = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="drs-bench-") as temporary:
        work = args.work_dir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            try:
                rows += SCENARIOS[name](scale, work, log)
            except Exception as exc:  # the other scenarios still run and are reported
                log(f"scenario {name} could not run: {type(exc).__name__}: {exc}")
                failed.append(name)
    print(
        f"drs-pipeline bench: {scale.projects} projects x {scale.jobs_per_project:,} jobs, "
        f"page_size {scale.page_size}, max_concurrency {scale.max_concurrency}, "
        f"best of {scale.repeat}, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(format_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
