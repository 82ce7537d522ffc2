"""``drs-pipeline``: sync, demo and simulator from the command line.

``sync`` and ``demo`` materialize the same Dagster assets the daemon runs,
in-process, so the command line and the schedule can never drift apart.

Exit codes: 0 every project ok; 1 some project failed or was incomplete (the
others still landed); 2 a configuration error (nothing was requested).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drs_pipeline.config import (
    ConfigError,
    Settings,
    duckdb_path,
    embedded_simulator_settings,
    load_settings,
    load_settings_file,
)

EXIT_OK, EXIT_NOT_OK, EXIT_CONFIG = 0, 1, 2

log = logging.getLogger("drs_pipeline.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Our progress at INFO; libraries (httpx logs every request, alembic every
    # migration step) only when something is wrong.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("drs_pipeline").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    command: int = args.handler(args)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drs-pipeline", description="History of Huawei Cloud DRS batch async jobs."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every page")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    sync = commands.add_parser("sync", help="sync every configured project once")
    sync.add_argument(
        "--config", type=Path, help="configuration file (default: $DRS_CONFIG, else ./drs.yaml)"
    )
    sync.add_argument("--database", type=Path, help="DuckDB file (default: $DRS_DUCKDB_PATH)")
    sync.set_defaults(handler=_sync_command)

    demo = commands.add_parser("demo", help="run the whole product on the embedded simulator")
    demo.add_argument("--syncs", type=int, default=4, help="syncs to run (default 4)")
    demo.add_argument(
        "--interval", type=float, default=3.0, help="seconds between syncs (default 3)"
    )
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
    simulator.set_defaults(handler=_simulator_command)

    # The benchmark owns its options (drs_pipeline.bench); imported lazily like the rest.
    from drs_pipeline.bench import build_parser as bench_parser

    bench = commands.add_parser("bench", help="benchmark sync, latency and merge (slow)")
    bench_parser(bench)
    bench.set_defaults(handler=_bench_command)
    return parser


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
    print(f"syncing {len(settings.projects)} projects from {settings.source} into {database}")
    return _materialize_and_report(database, config_path=args.config)


def _demo_command(args: argparse.Namespace) -> int:
    database = args.database.resolve() if args.database else duckdb_path()
    try:
        _check_target(database, embedded_simulator_settings())
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    worst = EXIT_OK
    for number in range(1, args.syncs + 1):
        print(f"\n== demo sync {number} of {args.syncs} (embedded simulator) ==")
        worst = max(worst, _materialize_and_report(database, embedded=True))
        if number < args.syncs:
            time.sleep(args.interval)
    from drs_pipeline.report import read_table, rounded

    print("\nJobs present now, by tenant, user and status (drs.status_counts):")
    print(_table(read_table(database, "FROM drs.status_counts")))
    print("\nDurations in seconds, by tenant, user and metric (drs.job_durations):")
    durations = read_table(
        database,
        "FROM drs.job_durations WHERE metric IN ('validation', 'time_to_commit') "
        "ORDER BY metric, domain_name, user_name",
    )
    print(_table(rounded(durations)))
    stuck = read_table(database, "SELECT count(*) AS stuck_jobs FROM drs.stuck_jobs")
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
    config_path: Path | None = None,
    embedded: bool = False,
) -> int:
    # Imported here: Dagster takes a second to import, `--help` should not wait.
    import dagster as dg

    from drs_pipeline.definitions import definitions_with_resources
    from drs_pipeline.defs.resources import DrsApiResource, HistoryDatabaseResource

    definitions = definitions_with_resources(
        {
            "drs_api": DrsApiResource(
                config_path=str(config_path) if config_path else None,
                embedded_simulator=embedded,
            ),
            "history_db": HistoryDatabaseResource(path=str(database)),
        }
    )
    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )
    with instance:
        # What the schedule runs: the ingest, the marts, the publication, every check.
        result = definitions.resolve_job_def("drs_pipeline_job").execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    sync_id = _sync_id_of(result)
    if sync_id is None:
        for event in result.get_step_failure_events():
            data = event.step_failure_data
            reason = data.user_failure_data.description if data.user_failure_data else None
            if reason is None and data.error is not None:
                reason = data.error.message
            print(f"sync failed: {reason}", file=sys.stderr)
        return EXIT_NOT_OK
    runs = _sync_runs(database, sync_id)
    print(_table(runs))
    not_ok = runs[runs["outcome"] != "ok"]
    for row in not_ok.itertuples():
        print(f"  {row.project_id}: {row.outcome}: {row.error}", file=sys.stderr)
    return EXIT_OK if not_ok.empty and result.success else EXIT_NOT_OK


def _sync_id_of(result: object) -> str | None:
    for event in result.get_asset_materialization_events():  # type: ignore[attr-defined]
        value = event.materialization.metadata.get("sync_id")
        if value is not None:
            return str(value.value)
    return None


def _sync_runs(database: Path, sync_id: str) -> pd.DataFrame:
    from drs_pipeline.warehouse.store import connect

    with connect(database, read_only=True) as con:
        return con.execute(
            "SELECT project_id, outcome, pages, jobs_seen AS jobs, new_jobs AS new, "
            "changed_jobs AS changed, gone_jobs AS gone, rejected_records AS rejected "
            "FROM drs.sync_runs WHERE sync_id = ? ORDER BY project_id",
            [sync_id],
        ).df()


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

    try:
        with explore.connect(args.database) as con:
            frame = con.execute(args.query).df()
    except (FileNotFoundError, duckdb.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    if args.csv:
        frame.to_csv(sys.stdout, index=False)
    else:
        with pd.option_context("display.max_rows", 500, "display.width", 200):
            print(_table(frame))
    return EXIT_OK


def _simulator_command(args: argparse.Namespace) -> int:
    from drs_pipeline.simulator import Faults, WorldSettings, build_simulator
    from drs_pipeline.simulator.gateway import AccessKey, AkSkGateway
    from drs_pipeline.simulator.iam import SimIam
    from drs_pipeline.simulator.server import run_forever

    try:
        ways_in = _simulator_credentials(args)
    except ValueError as exc:
        print(f"drs-pipeline simulator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    world = WorldSettings(seed=args.seed, speed=args.speed)
    faults = Faults(
        latency_s=args.latency_ms / 1000,
        rate_429=args.rate_429,
        retry_after=args.retry_after,
        rate_5xx=args.rate_5xx,
        rate_malformed=args.rate_malformed,
        drift_rate=args.drift_rate,
    )
    token = ways_in.get("token")
    app = build_simulator(world, faults=faults, tokens={token} if token else set())
    if "ak" in ways_in:
        app.gateway = AkSkGateway({ways_in["ak"]: AccessKey(ways_in["sk"])}, app.clock)
    if "password" in ways_in:
        app.iam = SimIam(app.clock)
        domain_name, user_name = args.iam_user.split("/", 1)
        app.iam.add_user(domain_name, user_name, ways_in["password"])
    url = f"http://{args.host}:{args.port}"
    print(f"DRS simulator on {url} with projects:")
    for project in world.projects:
        print(f"  {project.project_id}  {project.region}")
    print("accepting: " + ", ".join(_describe_ways_in(args, ways_in, url)))
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
