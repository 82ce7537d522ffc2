"""``drs-pipeline``: sync, watch, demo, sql, simulator and bench from the command line.

``sync`` and ``demo`` materialize the same Dagster assets the daemon runs,
in-process, so the command line and the schedule can never drift apart.
``watch`` calls what the watch's one op calls (``drs_pipeline.watch.run_watch``)
once a round, without Dagster: a run a round would cost more than the round.

What a user sees is plain: the per-project table on stdout, then one line on
stderr for each project that was not ok and for each failure of the run. An
outcome the product expects (a failed project, a failed check, a configuration
error) prints no stack trace: that detail is in Dagster's event log, and on
the terminal with ``-v``. Each subcommand's ``--help`` lists its exit codes.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from drs_pipeline.config import (
    ConfigError,
    ProjectLayout,
    Settings,
    duckdb_path,
    embedded_simulator_settings,
    load_settings,
    load_settings_file,
)

if TYPE_CHECKING:
    # Imported where used: pandas and Dagster are slow to import, and `--help` or
    # `--version` should not wait for them (docs/performance.md).
    import dagster as dg
    import pandas as pd

    from drs_pipeline.watch import WatchReport

EXIT_OK, EXIT_NOT_OK, EXIT_CONFIG = 0, 1, 2
# How DrsApiResource.settings_for_run words a configuration error inside a run.
CONFIG_ERROR_PREFIX = "configuration error:"
# The blocking check whose failure the per-project lines already explain.
PROJECTS_CHECK = "every_project_synced_ok"

VERBOSE_HELP = "log every page, and show Dagster's event log with its stack traces"
HELP_WIDTH = 78
# What each subcommand's --help says it does, and what its exit codes mean.
USAGE_ERROR = "wrong options"
DESCRIPTIONS: dict[str, tuple[str, dict[int, str]]] = {
    "sync": (
        "Sync every configured project once (or those --project names): what the schedule "
        "runs (the ingest, the marts, the publication, the alerts and every check), "
        "in-process. Prints one line per project, then one line for each project that was not "
        "ok, with its error.",
        {
            EXIT_OK: "every project synced ok",
            EXIT_NOT_OK: "some project failed or was incomplete (the others still landed), "
            "or a step or check of the run failed",
            EXIT_CONFIG: "configuration error, or a --project that is not configured (nothing "
            f"was requested), or {USAGE_ERROR}",
        },
    ),
    "watch": (
        "Observe the jobs in a watched status (watch.statuses of drs.yaml) every few seconds "
        "until stopped: per project, one listing per watched status and a look-up by id of "
        "each watched job they lacked, merged into the history (no marts, no publication). "
        "Prints one line per round, then one line for each project that was not ok.",
        {
            EXIT_OK: "stopped (Ctrl-C, SIGTERM, or --for ran out), whatever the rounds found",
            EXIT_CONFIG: "configuration error, the watch is off (watch.statuses is empty) or "
            "the database holds the other kind of history (nothing was requested), or "
            f"{USAGE_ERROR}",
        },
    ),
    "demo": (
        "Run the whole product on the embedded simulator: several syncs a few seconds apart, "
        "then the status counts and durations per tenant and user.",
        {
            EXIT_OK: "every project of every sync ok",
            EXIT_NOT_OK: "some project of some sync failed or was incomplete, or a step or "
            "check of a run failed",
            EXIT_CONFIG: "the database holds projects that are not the simulator's (nothing "
            f"was written), or {USAGE_ERROR}",
        },
    ),
    "sql": (
        "Run a read-only SQL query against the published history and print the result.",
        {
            EXIT_OK: "the result was printed",
            EXIT_NOT_OK: "the query failed, or there is no published history yet",
            EXIT_CONFIG: USAGE_ERROR,
        },
    ),
    "simulator": (
        "Serve the DRS simulator over HTTP on loopback, until interrupted. Secrets come "
        "from the environment variables its options name, never the command line.",
        {
            EXIT_OK: "stopped (Ctrl-C or SIGTERM)",
            EXIT_CONFIG: "a variable it needs is not set, or options that go together were "
            f"not given together, or {USAGE_ERROR}",
        },
    ),
    "bench": (
        "Benchmark sync, latency and merge against bounds measured in the same run (slow). "
        "Reports whether each target was met either way.",
        {
            EXIT_OK: "every scenario ran (met or not)",
            EXIT_NOT_OK: "a scenario could not run",
            EXIT_CONFIG: USAGE_ERROR,
        },
    ),
}

log = logging.getLogger("drs_pipeline.cli")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(argv).parse_args(argv)
    # Without -v: only what is wrong (a retry, a locked file) from our code, nothing
    # from libraries. With -v: every page, and Dagster's event log with its stack traces.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("drs_pipeline").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    command: int = args.handler(args)
    return command


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; the benchmark's options are built only when ``argv`` runs it."""
    parser = argparse.ArgumentParser(
        prog="drs-pipeline",
        description="History of Huawei Cloud DRS batch async jobs.",
        epilog="Each command's --help lists its options, their defaults and its exit codes.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    sync = commands.add_parser("sync", help="sync every configured project once")
    sync.add_argument(
        "--config", type=Path, help="configuration file (default: $DRS_CONFIG, else ./drs.yaml)"
    )
    sync.add_argument("--database", type=Path, help="DuckDB file (default: $DRS_DUCKDB_PATH)")
    sync.add_argument(
        "--project",
        action="append",
        metavar="ID",
        help="sync only this configured project (repeatable; default: every configured project)",
    )
    sync.set_defaults(handler=_sync_command)

    watch = commands.add_parser("watch", help="observe the jobs in a watched status until stopped")
    watch.add_argument(
        "--config", type=Path, help="configuration file (default: $DRS_CONFIG, else ./drs.yaml)"
    )
    watch.add_argument("--database", type=Path, help="DuckDB file (default: $DRS_DUCKDB_PATH)")
    watch.add_argument(
        "--for",
        dest="duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C)",
    )
    watch.add_argument(
        "--every",
        type=_positive_seconds,
        metavar="SECONDS",
        help="seconds from one round's start to the next's (default: watch.seconds of "
        "drs.yaml, 30)",
    )
    watch.set_defaults(handler=_watch_command)

    demo = commands.add_parser("demo", help="run the whole product on the embedded simulator")
    demo.add_argument("--syncs", type=int, default=4, help="syncs to run")
    demo.add_argument("--interval", type=float, default=3.0, help="seconds between syncs")
    demo.add_argument("--database", type=Path, help="DuckDB file (default: $DRS_DUCKDB_PATH)")
    demo.set_defaults(handler=_demo_command)

    sql = commands.add_parser(
        "sql", help="run a read-only SQL query against the published history, print the result"
    )
    sql.add_argument("query", help='e.g. "FROM drs.status_counts"')
    sql.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    sql.add_argument(
        "--database",
        type=Path,
        help="DuckDB file (default: the published copy, $DRS_PUBLISHED_PATH)",
    )
    sql.set_defaults(handler=_sql_command)

    simulator = commands.add_parser("simulator", help="serve the DRS simulator over HTTP")
    simulator.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    simulator.add_argument("--port", type=int, default=8600)
    simulator.add_argument("--seed", type=int, default=42)
    simulator.add_argument("--speed", type=float, default=60.0, help="world seconds per second")
    simulator.add_argument(
        "--token-env",
        default="DRS_AUTH_TOKEN",
        help="environment variable holding the one token the simulator accepts",
    )
    # The other two ways in, as the real gateway and IAM check them (simulator/gateway.py
    # and simulator/iam.py). Secrets come through the environment, never the command line.
    simulator.add_argument(
        "--ak-env", help="environment variable holding an AK its gateway accepts (with --sk-env)"
    )
    simulator.add_argument("--sk-env", help="environment variable holding that AK's SK")
    simulator.add_argument(
        "--iam-user",
        metavar="DOMAIN/USER",
        help="an IAM user of its own /v3/auth/tokens (with --iam-password-env)",
    )
    simulator.add_argument("--iam-password-env", help="environment variable holding its password")
    simulator.add_argument("--latency-ms", type=float, default=0.0)
    simulator.add_argument("--rate-429", type=float, default=0.0)
    simulator.add_argument("--retry-after", default="1", help="Retry-After sent with a 429")
    simulator.add_argument("--rate-5xx", type=float, default=0.0)
    simulator.add_argument("--rate-malformed", type=float, default=0.0)
    simulator.add_argument("--drift-rate", type=float, default=0.0)
    # The world (simulator/stream.py) and what the API documentation leaves open
    # (simulator/faults.py): every switch is off unless given.
    simulator.add_argument(
        "--tie-share",
        type=float,
        default=0.0,
        metavar="P",
        help="share of jobs created in the same second as the one before them (0-1)",
    )
    simulator.add_argument(
        "--frozen-at",
        type=float,
        metavar="EPOCH_SECONDS",
        help="stop the world clock at this instant (default: wall time)",
    )
    simulator.add_argument(
        "--clock-skew-s",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the server's clock (listings, create_time, Date) this far ahead (<0: behind)",
    )
    simulator.add_argument(
        "--max-page",
        type=int,
        metavar="N",
        help="serve at most N rows per page whatever limit asks (no 400 over 1000)",
    )
    simulator.add_argument(
        "--random-ties",
        action="store_true",
        help="jobs of the same create_time second come back in a new random order each time",
    )
    simulator.add_argument(
        "--empty-once",
        action="store_true",
        help="each project's first unfiltered offset-0 list request answers an empty list",
    )
    simulator.add_argument(
        "--empty-listings",
        type=int,
        default=0,
        metavar="N",
        help="the next N unfiltered offset-0 list requests (any project) answer an empty list",
    )
    simulator.add_argument(
        "--ignore-id-filter", action="store_true", help="ignore async_job_id= in list requests"
    )
    simulator.add_argument(
        "--unknown-id-error",
        action="store_true",
        help="a by-id request for a job not listed answers 400 DRS.10000010, not an empty list",
    )
    simulator.add_argument(
        "--total-count",
        type=int,
        metavar="N",
        help="report this total_count in every list answer",
    )
    simulator.add_argument(
        "--ignore-offset", action="store_true", help="ignore offset: every page is the first"
    )
    simulator.add_argument(
        "--trickle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="send a list answer's body one byte every SECONDS after its headers",
    )
    simulator.add_argument(
        "--no-date-header",
        action="store_true",
        help="send no Date header, as a server without a clock",
    )
    simulator.set_defaults(handler=_simulator_command)

    bench = commands.add_parser("bench", help="benchmark sync, latency and merge (slow)")
    if _command_of(argv) == "bench":
        # The benchmark owns its options, and only this command imports it
        # (tests/test_imports.py).
        from drs_pipeline.bench import build_parser as bench_parser

        bench_parser(bench)
    bench.set_defaults(handler=_bench_command)

    for name, command in commands.choices.items():
        description, exit_codes = DESCRIPTIONS[name]
        # Wrapped here, so that the formatter can keep the exit codes one per line.
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.description = textwrap.fill(description, HELP_WIDTH)
        command.epilog = "exit codes:\n" + "\n".join(
            textwrap.fill(
                meaning, HELP_WIDTH, initial_indent=f"  {code}  ", subsequent_indent=" " * 5
            )
            for code, meaning in sorted(exit_codes.items())
        )
        # Also after the command (`drs-pipeline sync -v`). SUPPRESS: absent here, it
        # must not reset a -v given before the command.
        command.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help=VERBOSE_HELP if name in ("sync", "demo") else "log at DEBUG level",
        )
        _show_defaults(command)
    return parser


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (the
    options before it take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append its default to the help of each option that has a default worth showing
    (and does not explain its default already)."""
    for action in parser._actions:
        default = action.default
        if not action.option_strings or default is None or default is False:
            continue
        if default == argparse.SUPPRESS or action.help == argparse.SUPPRESS:
            continue
        if action.help and "default" in action.help:
            continue
        shown = "(default: %(default)s)"
        action.help = f"{action.help} {shown}" if action.help else shown


def _version() -> str:
    return version("drs_pipeline")


def _bench_command(args: argparse.Namespace) -> int:
    from drs_pipeline.bench import run

    return run(args)


def _sync_command(args: argparse.Namespace) -> int:
    database = args.database.resolve() if args.database else duckdb_path()
    try:
        settings = load_settings_file(args.config) if args.config else load_settings()
        _check_target(database, settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configured = [project.project_id for project in settings.projects]
    wanted = set(args.project or configured)
    unknown = sorted(wanted.difference(configured))
    if unknown:
        for project_id in unknown:
            print(
                f"error: --project {project_id}: not one of the "
                f"{_counted(len(configured), 'project')} of {settings.source}",
                file=sys.stderr,
            )
        return EXIT_CONFIG
    # In the configuration's order, as the code location lists the partitions.
    selected = [project_id for project_id in configured if project_id in wanted]
    of = f" of {len(configured)}" if len(selected) < len(configured) else ""
    print(
        f"syncing {len(selected)}{of} project{'s' if len(configured) != 1 else ''} "
        f"from {settings.source} into {database}"
    )
    return _materialize_and_report(
        database,
        verbose=args.verbose,
        config_path=args.config,
        projects=ProjectLayout(tuple(selected), settings.freshness_minutes),
    )


def _watch_command(args: argparse.Namespace) -> int:
    from drs_pipeline.warehouse.target import check_target

    database = args.database.resolve() if args.database else duckdb_path()
    try:
        settings = load_settings_file(args.config) if args.config else load_settings()
        if not settings.watch.statuses:
            raise ConfigError(settings.source, "watch.statuses", "is empty: the watch is off")
        # The watch publishes nothing: only the database is checked.
        check_target(database, settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    every = args.every if args.every is not None else float(settings.watch.seconds)
    until = f"for {args.duration:g} s" if args.duration is not None else "until Ctrl-C"
    print(
        f"watching {_counted(len(settings.projects), 'project')} for "
        f"{', '.join(settings.watch.statuses)} every {every:g} s {until}, "
        f"from {settings.source} into {database}",
        flush=True,
    )
    # SIGTERM (a service manager, `timeout`) stops the watch as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    deadline = started + args.duration if args.duration is not None else math.inf
    try:
        for number in range(1, sys.maxsize):
            if not _watch_round(number, settings, database, every, verbose=args.verbose):
                return EXIT_CONFIG
            # Rounds start every `every` seconds; a round that ran long skips the starts
            # it missed rather than running the next ones back to back.
            now = time.monotonic()
            next_at = started + every * (math.floor((now - started) / every) + 1)
            if next_at >= deadline:
                time.sleep(max(0.0, deadline - now))
                break
            time.sleep(next_at - now)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch_round(
    number: int, settings: Settings, database: Path, every: float, *, verbose: bool
) -> bool:
    """One round and its lines; False on a configuration error (it would recur)."""
    from drs_pipeline.warehouse.store import WarehouseLockedError
    from drs_pipeline.watch import run_watch

    try:
        # A round waits for the file at most until the next one is due.
        report = run_watch(settings, database, lock_timeout_s=every)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return False
    except WarehouseLockedError as exc:
        print(f"round {number}: skipped: {exc}", file=sys.stderr, flush=True)
        return True
    except Exception as exc:
        # A watch runs for hours: one round's failure (a full disk) is reported and the
        # next round tries again.
        if verbose:
            log.exception("round %d failed", number)
        print(
            f"round {number}: failed: {type(exc).__name__}: {exc}"
            + ("" if verbose else " (run again with -v for the stack trace)"),
            file=sys.stderr,
            flush=True,
        )
        return True
    print(_round_line(number, report), flush=True)
    for project in report.not_ok:
        print(
            f"{project.project_id}: {project.outcome}: {project.error}", file=sys.stderr, flush=True
        )
    return True


def _round_line(number: int, report: WatchReport) -> str:
    failed = f" ({len(report.failed)} failed)" if report.failed else ""
    return (
        f"round {number}: {_counted(len(report.projects), 'project')}{failed}, "
        f"{_counted(report.jobs_observed, 'job')} observed, {report.changed_jobs} changed, "
        f"{report.new_jobs_left} new left to the next sync"
    )


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("s" if count != 1 else "")


def _demo_command(args: argparse.Namespace) -> int:
    database = args.database.resolve() if args.database else duckdb_path()
    try:
        _check_target(database, embedded_simulator_settings())
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    embedded = embedded_simulator_settings()
    embedded_layout = ProjectLayout(tuple(project.project_id for project in embedded.projects))
    worst = EXIT_OK
    for number in range(1, args.syncs + 1):
        print(f"\n== demo sync {number} of {args.syncs} (embedded simulator) ==")
        worst = max(
            worst,
            _materialize_and_report(
                database, verbose=args.verbose, embedded=True, projects=embedded_layout
            ),
        )
        if number < args.syncs:
            time.sleep(args.interval)
    from drs_pipeline.report import rounded
    from drs_pipeline.warehouse.queries import read_query
    from drs_pipeline.warehouse.store import connect

    with connect(database, read_only=True) as con:
        counts = read_query(con, "demo_status_counts")
        durations = read_query(con, "demo_durations")
        stuck = read_query(con, "demo_stuck_jobs")
    print("\nJobs present now, by tenant, user and status (drs.status_counts):")
    print(_table(counts))
    print("\nDurations in seconds, by tenant, user and metric (drs.job_durations):")
    print(_table(rounded(durations)))
    print(f"\nStuck jobs (drs.stuck_jobs): {int(stuck['stuck_jobs'].iloc[0])}")
    from drs_pipeline.warehouse.publish import published_path

    print(f"\nThe history is in {database}; readers use the published copy")
    print(f"  {published_path(database=database)}")
    print("Query it with SQL, or open notebooks/explore_jobs.ipynb (make notebook):")
    print('  drs-pipeline sql "FROM drs.job_durations"')
    return worst


def _materialize_and_report(
    database: Path,
    *,
    verbose: bool,
    projects: ProjectLayout,
    config_path: Path | None = None,
    embedded: bool = False,
) -> int:
    """One run of the job over ``projects`` (its partitions): the table of projects on
    stdout, then a plain line on stderr for each project not ok and each other failure
    of the run."""
    import dagster as dg

    from drs_pipeline.definitions import definitions_with_resources, execute_pipeline
    from drs_pipeline.defs.ingest.partitions import project_partitions
    from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource

    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(
                config_path=str(config_path) if config_path else None,
                embedded_simulator=embedded,
            ),
            "history_db": HistoryDatabaseResource(path=str(database)),
        },
        project_partitions(projects),
    )
    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )
    # The event log keeps every event and stack trace; the terminal shows them with -v.
    console_level = "WARNING" if verbose else "CRITICAL"
    with instance:
        # What the schedule runs: the ingest, the marts, the publication, the alerts, every
        # check, every selected project in one run.
        result = execute_pipeline(
            definitions,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": console_level}}}},
        )
    lines: list[str] = []
    sync_id = _sync_id_of(result)
    if sync_id is not None:
        runs = _sync_runs(database, sync_id)
        print(_table(runs.drop(columns="error")), flush=True)
        not_ok = runs[runs["outcome"] != "ok"]
        lines += [
            f"{project_id}: {outcome}: {error or '(no error recorded)'}"
            for project_id, outcome, error in zip(
                not_ok["project_id"], not_ok["outcome"], not_ok["error"], strict=True
            )
        ]
    failures, config_error, unexpected = _run_failures(result)
    lines += failures
    if unexpected and not verbose:
        lines.append("(run again with -v for the stack trace)")
    for line in lines:
        print(line, file=sys.stderr)
    if config_error:
        return EXIT_CONFIG
    return EXIT_OK if result.success and not lines else EXIT_NOT_OK


def _run_failures(result: dg.ExecuteInProcessResult) -> tuple[list[str], bool, bool]:
    """What failed in the run besides a project, one plain line each; whether one of
    them is a configuration error, and whether one is an error nobody expected."""
    lines = [
        f"check {check.asset_key.to_user_string()} {check.check_name} failed: {check.description}"
        for check in result.get_asset_check_evaluations()
        if not check.passed and check.blocking and check.check_name != PROJECTS_CHECK
    ]
    config_error = unexpected = False
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None and error.cls_name == "DagsterAssetCheckFailedError":
            continue  # a failed blocking check: reported from its evaluation, above
        reason, on_purpose = _failure_reason(event)
        if on_purpose and reason.startswith(CONFIG_ERROR_PREFIX):
            config_error = True
            lines.append(reason)
        else:
            unexpected = unexpected or not on_purpose
            lines.append(f"{event.step_key} failed: {reason}")
    return lines, config_error, unexpected


def _failure_reason(event: dg.DagsterEvent) -> tuple[str, bool]:
    """Why a step failed, in one line, and whether it was on purpose (a ``dg.Failure``,
    whose description says it all) rather than an exception nobody expected."""
    data = event.step_failure_data
    if data.user_failure_data is not None:
        return data.user_failure_data.description or "(no description)", True
    error = data.error
    if error is None:
        return "(no error recorded)", False
    # Dagster's wrappers (a step's error, a retry policy that gave up) hold what our
    # code raised as their cause.
    while error.cause is not None and (
        (error.cls_name or "").startswith("Dagster")
        or error.cls_name == "RetryRequestedFromPolicy"
        or error.message.startswith("dagster.")
    ):
        error = error.cause
    message = error.message.strip()
    if error.cls_name == "Failure":  # a dg.Failure that was retried first
        return message.split(": ", 1)[-1], True
    return message, False


def _sync_id_of(result: dg.ExecuteInProcessResult) -> str | None:
    for event in result.get_asset_materialization_events():
        value = event.materialization.metadata.get("sync_id")
        if value is not None:
            return str(value.value)
    return None


def _sync_runs(database: Path, sync_id: str) -> pd.DataFrame:
    from drs_pipeline.warehouse.queries import read_query
    from drs_pipeline.warehouse.store import connect

    with connect(database, read_only=True) as con:
        return read_query(con, "sync_runs_of_sync", {"sync_id": sync_id})


def _check_target(database: Path, settings: Settings) -> None:
    """The guard every sync runs first (``warehouse.target``), before anything runs,
    the readers' copy included: exit 2 instead of a failed run."""
    from drs_pipeline.warehouse.publish import published_path
    from drs_pipeline.warehouse.target import check_target

    check_target(database, settings, published=published_path(database=database))


def _table(frame: pd.DataFrame) -> str:
    return str(frame.to_string(index=False)) if not frame.empty else "(no rows)"


def _sql_command(args: argparse.Namespace) -> int:
    import duckdb

    from drs_pipeline import explore
    from drs_pipeline.warehouse.store import WarehouseLockedError

    try:
        with explore.connect(args.database) as con:
            frame = con.execute(args.query).df()
    except (FileNotFoundError, duckdb.Error, WarehouseLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    if args.csv:
        frame.to_csv(sys.stdout, index=False)
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 500, "display.width", 200):
            print(_table(frame))
    return EXIT_OK


def _simulator_command(args: argparse.Namespace) -> int:
    from drs_pipeline.simulator import (
        Faults,
        ManualClock,
        SkewedClock,
        WallClock,
        WorldSettings,
        build_simulator,
    )
    from drs_pipeline.simulator.gateway import AccessKey, AkSkGateway
    from drs_pipeline.simulator.iam import SimIam
    from drs_pipeline.simulator.server import run_forever

    try:
        ways_in = _simulator_credentials(args)
        world = WorldSettings(
            seed=args.seed,
            speed=args.speed,
            tie_share=args.tie_share,
            clock_skew_s=args.clock_skew_s,
        )
        faults = Faults(
            latency_s=args.latency_ms / 1000,
            rate_429=args.rate_429,
            retry_after=args.retry_after,
            rate_5xx=args.rate_5xx,
            rate_malformed=args.rate_malformed,
            drift_rate=args.drift_rate,
            max_page=args.max_page,
            random_ties=args.random_ties,
            empty_first_listing=args.empty_once,
            empty_listings=args.empty_listings,
            ignore_id_filter=args.ignore_id_filter,
            unknown_id_error=args.unknown_id_error,
            total_count=args.total_count,
            ignore_offset=args.ignore_offset,
            trickle_s=args.trickle,
            no_date_header=args.no_date_header,
        )
    except ValueError as exc:
        print(f"drs-pipeline simulator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    token = ways_in.get("token")
    # A frozen world still signs and expires in real time: the gateway's date check and
    # IAM's token lifetimes read the wall clock, as skewed as the rest of the server.
    clock = ManualClock(args.frozen_at) if args.frozen_at is not None else None
    app = build_simulator(world, faults=faults, tokens={token} if token else set(), clock=clock)
    wall = SkewedClock(WallClock(), args.clock_skew_s)
    if "ak" in ways_in:
        app.gateway = AkSkGateway({ways_in["ak"]: AccessKey(ways_in["sk"])}, wall)
    if "password" in ways_in:
        app.iam = SimIam(wall)
        domain_name, user_name = args.iam_user.split("/", 1)
        app.iam.add_user(domain_name, user_name, ways_in["password"])
    url = f"http://{args.host}:{args.port}"
    print(f"DRS simulator on {url} with projects:")
    for project in world.projects:
        print(f"  {project.project_id}  {project.region}")
    print("accepting: " + ", ".join(_describe_ways_in(args, ways_in, url)))
    if args.frozen_at is not None:
        print(f"world clock frozen at {args.frozen_at}")
    if args.clock_skew_s:
        print(f"server clock skewed by {args.clock_skew_s:+g} s (listings, create_time, Date)")
    run_forever(app, args.host, args.port)
    return EXIT_OK


def _simulator_credentials(args: argparse.Namespace) -> dict[str, str]:
    """The secrets the simulator accepts, read from the variables its options name.

    A token (``--token-env``) is needed only when neither AK/SK nor an IAM user is given.
    """
    if bool(args.ak_env) != bool(args.sk_env):
        raise ValueError("--ak-env and --sk-env go together")
    if bool(args.iam_user) != bool(args.iam_password_env):
        raise ValueError("--iam-user and --iam-password-env go together")
    if args.iam_user and not re.fullmatch(r"[^/\s]+/[^/\s]+", args.iam_user):
        raise ValueError(f"--iam-user must be DOMAIN/USER, got {args.iam_user!r}")

    def read(variable: str) -> str:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise ValueError(
                f"set {variable}, e.g.\n  export {variable}="
                "$(python -c 'import secrets; print(secrets.token_hex(16))')"
            )
        return value

    ways_in: dict[str, str] = {}
    if args.ak_env:
        ways_in["ak"], ways_in["sk"] = read(args.ak_env), read(args.sk_env)
    if args.iam_user:
        ways_in["password"] = read(args.iam_password_env)
    if ways_in:
        token = os.environ.get(args.token_env, "").strip()
        if token:
            ways_in["token"] = token
    else:
        ways_in["token"] = read(args.token_env)
    return ways_in


def _describe_ways_in(args: argparse.Namespace, ways_in: dict[str, str], url: str) -> list[str]:
    """What a client can authenticate with, naming the variables, never the values."""
    described = []
    if "token" in ways_in:
        described.append(f"the token in {args.token_env}")
    if "ak" in ways_in:
        described.append(f"requests signed with the AK/SK in {args.ak_env}/{args.sk_env}")
    if "password" in ways_in:
        described.append(
            f"tokens from {url}/v3/auth/tokens for {args.iam_user} "
            f"(password in {args.iam_password_env})"
        )
    return described


if __name__ == "__main__":
    raise SystemExit(main())
