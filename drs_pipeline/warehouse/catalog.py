"""The catalog of the ``drs`` schema: every table, what it holds, and its columns.

One list read by the Dagster asset specs (column schemas, descriptions), the row
counts, and the docs' table reference (``catalog_markdown``). The SQL that creates
the tables (``schema.sql``, ``marts/*.sql``, ``target.py``, ``publish.py``) is
checked against it by the tests, column by column.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA = "drs"


@dataclass(frozen=True)
class Column:
    name: str
    # As DuckDB reports it (duckdb_columns().data_type).
    type: str
    description: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]

    @property
    def qualified_name(self) -> str:
        return f"{SCHEMA}.{self.name}"


def _c(name: str, type_: str, description: str, *, nullable: bool = False) -> Column:
    return Column(name, type_, description, nullable)


def _mart(*columns: Column) -> tuple[Column, ...]:
    """Columns of a table made by ``CREATE TABLE AS``: DuckDB declares all of them nullable."""
    return tuple(Column(c.name, c.type, c.description, nullable=True) for c in columns)


_PROJECT = _c("project_id", "VARCHAR", "The Huawei Cloud project (32 hexadecimal digits).")
_REGION = _c("region", "VARCHAR", "The project's region, e.g. cn-south-2.")
_JOB = _c("async_job_id", "VARCHAR", "The batch async job's id.")
_STATUS = _c("status", "VARCHAR", "The job's status as the API reports it (unknown values kept).")
_DOMAIN = _c("domain_name", "VARCHAR", "The tenant (account) that owns the job.")
_USER = _c("user_name", "VARCHAR", "The IAM user that owns the job.")
_SYNC = _c("sync_id", "VARCHAR", "The sync that recorded the row.")
_METRIC = _c("metric", "VARCHAR", "What is measured: validation, time_to_commit or dwell:<STATUS>.")
_STATISTICS = (
    _c("jobs", "BIGINT", "Samples measured (jobs that finished the measured state)."),
    _c("mean_s", "DOUBLE", "Mean of the samples' midpoints, in seconds; NULL without samples."),
    _c("p50_s", "DOUBLE", "Median of the midpoints, in seconds."),
    _c("p90_s", "DOUBLE", "90th percentile of the midpoints, in seconds."),
    _c("max_s", "DOUBLE", "Largest midpoint, in seconds."),
    _c(
        "in_progress",
        "BIGINT",
        "Jobs present now still in the measured state: not in the statistics yet.",
    ),
    _c(
        "resolution_s",
        "DOUBLE",
        "Median of high_s - low_s: how sharp the samples are, in seconds.",
    ),
)
_LOW = _c("low_s", "DOUBLE", "Shortest duration the observations allow, in seconds.")

ASYNC_JOBS = Table(
    "async_jobs",
    "Current state of every batch async job ever seen, one row per project and job.",
    (
        _PROJECT,
        _REGION,
        _JOB,
        _c("status", "VARCHAR", "Status as last seen (unknown values kept)."),
        _c("domain_name", "VARCHAR", "Owning tenant as last seen."),
        _c("user_name", "VARCHAR", "Owning IAM user as last seen."),
        _c("create_time", "TIMESTAMP WITH TIME ZONE", "When the job was created, per the API."),
        _c("first_seen_at", "TIMESTAMP WITH TIME ZONE", "First observation of the job."),
        _c("last_seen_at", "TIMESTAMP WITH TIME ZONE", "Latest observation of the job."),
        _c("status_since", "TIMESTAMP WITH TIME ZONE", "Start of the current interval."),
        _c(
            "is_gone",
            "BOOLEAN",
            "The job left a complete listing and the API, asked by id, confirmed it.",
        ),
        _c(
            "gone_at",
            "TIMESTAMP WITH TIME ZONE",
            "When a complete listing first lacked the job; NULL while it is present.",
            nullable=True,
        ),
    ),
)

ASYNC_JOB_HISTORY = Table(
    "async_job_history",
    "Every interval a job spent in one status and owner (SCD2).",
    (
        _PROJECT,
        _JOB,
        _STATUS,
        _DOMAIN,
        _USER,
        _c("valid_from", "TIMESTAMP WITH TIME ZONE", "First observation of this interval."),
        _c(
            "valid_to",
            "TIMESTAMP WITH TIME ZONE",
            "First observation of the next interval, or of the job gone; NULL while current.",
            nullable=True,
        ),
        _c(
            "last_seen_at",
            "TIMESTAMP WITH TIME ZONE",
            "Last observation within the interval: the job left it after this and no "
            "later than valid_to. The current interval's moves with every sync that sees "
            "the job; in a history upgraded from before this column, a closed "
            "interval's is its valid_from.",
        ),
    ),
)

SYNC_RUNS = Table(
    "sync_runs",
    "One row per project per sync: outcome, pages, counts, error.",
    (
        _SYNC,
        _PROJECT,
        _c("started_at", "TIMESTAMP WITH TIME ZONE", "When the project's sync started."),
        _c("finished_at", "TIMESTAMP WITH TIME ZONE", "When the project's sync ended."),
        _c("outcome", "VARCHAR", "ok, incomplete (what was seen landed) or failed."),
        _c("error", "VARCHAR", "Why the project was not ok; NULL when ok.", nullable=True),
        _c("pages", "INTEGER", "Listing pages read, re-listings and narrowed listings included."),
        _c("jobs_seen", "INTEGER", "Distinct jobs landed."),
        _c(
            "total_count",
            "INTEGER",
            "The project's job count as the API last reported it.",
            nullable=True,
        ),
        _c("new_jobs", "INTEGER", "Jobs seen for the first time."),
        _c("changed_jobs", "INTEGER", "Jobs whose status or owner changed."),
        _c("gone_jobs", "INTEGER", "Jobs found gone."),
        _c("rejected_records", "INTEGER", "Records that could not be read."),
        _c(
            "requests",
            "INTEGER",
            "Every request sent for the project (pages, look-ups by id, retries); "
            "NULL in rows written before it was counted.",
            nullable=True,
        ),
        _c(
            "server_clock_offset_s",
            "DOUBLE",
            "The API server's clock minus ours, in seconds: the median over the project's "
            "pages of their Date header (+0.5 s, its resolution centred) minus the middle "
            "of each request's flight. NULL when the server sent no Date, or in rows "
            "written before it was recorded.",
            nullable=True,
        ),
    ),
)

REJECTED_RECORDS = Table(
    "rejected_records",
    "Records the API returned that could not be read, with the reason.",
    (
        _SYNC,
        _PROJECT,
        _c("record", "VARCHAR", "The raw JSON as received."),
        _c("reason", "VARCHAR", "The page offset, the field and what was wrong."),
    ),
)

PROJECT_STATUS = Table(
    "project_status",
    "Every project in the history or the configuration: whether it is configured, its "
    "last syncs, and whether it is stale.",
    _mart(
        _PROJECT,
        _c("region", "VARCHAR", "The configured region, else the one its jobs were synced with."),
        _c(
            "configured",
            "BOOLEAN",
            "In the configuration now; the marts of what is present cover only these.",
        ),
        _c(
            "last_ok_sync_at",
            "TIMESTAMP WITH TIME ZONE",
            "When its latest ok sync finished; NULL if it never synced ok.",
        ),
        _c(
            "last_sync_at",
            "TIMESTAMP WITH TIME ZONE",
            "When its latest sync finished, whatever the outcome; NULL if never synced.",
        ),
        _c("last_outcome", "VARCHAR", "The outcome of its latest sync; NULL if never synced."),
        _c(
            "stale",
            "BOOLEAN",
            "No ok sync finished within freshness_minutes before the marts were rebuilt.",
        ),
    ),
)

_AS_OF = _c(
    "as_of",
    "TIMESTAMP WITH TIME ZONE",
    "When the project's latest ok sync finished: the row is at least as current as that.",
)
_STALE = _c("stale", "BOOLEAN", "The project is stale (drs.project_status).")
_JOBS_NOW = _c("jobs", "BIGINT", "Jobs present, as last observed.")

STATUS_COUNTS_BY_PROJECT = Table(
    "status_counts_by_project",
    "status_counts with project_id and region.",
    _mart(_PROJECT, _REGION, _DOMAIN, _USER, _STATUS, _JOBS_NOW, _AS_OF, _STALE),
)

STATUS_COUNTS = Table(
    "status_counts",
    "Jobs present now per tenant, user and status, in the configured projects.",
    _mart(
        _DOMAIN,
        _USER,
        _STATUS,
        _JOBS_NOW,
        _c(
            "as_of",
            "TIMESTAMP WITH TIME ZONE",
            "The oldest as_of of the row's projects (drs.status_counts_by_project); NULL if one "
            "of them never synced ok.",
        ),
        _c("stale", "BOOLEAN", "One of the row's projects is stale (drs.project_status)."),
    ),
)

JOB_CLOCK = Table(
    "job_clock",
    "Every job's create_time on our clock, and whether the history watched it from its start "
    "(what the transitions' first bounds and the durations start from; "
    "docs/decisions/0008-duration-bounds.md).",
    _mart(
        _PROJECT,
        _JOB,
        _c(
            "created_at",
            "TIMESTAMP WITH TIME ZONE",
            "create_time less the server's clock offset measured by the project's latest sync "
            "started by the job's first observation, and never after that observation.",
        ),
        _c(
            "seen_from_start",
            "BOOLEAN",
            "The project's last ok sync before the job's first observation began before the "
            "job was created and ended within freshness_minutes of that observation.",
        ),
    ),
)

STATUS_TRANSITIONS = Table(
    "status_transitions",
    "Every change of status of every job, with the observations that bound it.",
    _mart(
        _PROJECT,
        _REGION,
        _JOB,
        _c("domain_name", "VARCHAR", "The tenant that owned the job when it entered to_status."),
        _c("user_name", "VARCHAR", "The IAM user that owned the job when it entered to_status."),
        _c("from_status", "VARCHAR", "The status left; NULL on a job's first row."),
        _c("to_status", "VARCHAR", "The status entered."),
        _c(
            "not_before",
            "TIMESTAMP WITH TIME ZONE",
            "The change happened after this: the last observation in from_status. On a "
            "job's first row, its create_time (on our clock) when it was first seen in "
            "ASYNC_JOB_VALIDATING, else NULL (unknown).",
        ),
        _c(
            "not_after",
            "TIMESTAMP WITH TIME ZONE",
            "The change happened no later than this: the first observation in to_status.",
        ),
    ),
)

JOB_STEPS = Table(
    "job_steps",
    "Each job's stays in order, with when each began and ended, bounded by observations "
    "(what the durations are measured from; docs/decisions/0008-duration-bounds.md).",
    _mart(
        _PROJECT,
        _JOB,
        _c("status", "VARCHAR", "The status of the stay."),
        _c("step", "BIGINT", "The stay's place in the job's order, from 1."),
        _c(
            "began_after",
            "TIMESTAMP WITH TIME ZONE",
            "The stay began after this; NULL when its start is unknown (first seen already in it).",
        ),
        _c("began_by", "TIMESTAMP WITH TIME ZONE", "The stay had begun by this."),
        _c("ended_after", "TIMESTAMP WITH TIME ZONE", "It ended after this; NULL while it lasts."),
        _c("ended_by", "TIMESTAMP WITH TIME ZONE", "It had ended by this; NULL while it lasts."),
        _c("created_at", "TIMESTAMP WITH TIME ZONE", "The job's created_at (drs.job_clock)."),
        _c("first_seen_in", "TIMESTAMP WITH TIME ZONE", "The stay's first observation."),
    ),
)

DURATION_SAMPLES = Table(
    "duration_samples",
    "Every measured duration (validation, time_to_commit, dwell:<STATUS>), with its bounds.",
    _mart(
        _PROJECT,
        _REGION,
        _JOB,
        _DOMAIN,
        _USER,
        _METRIC,
        _c("seconds", "DOUBLE", "The midpoint of low_s and high_s, in seconds."),
        _LOW,
        _c("high_s", "DOUBLE", "Longest duration the observations allow, in seconds."),
    ),
)

DURATIONS_IN_PROGRESS = Table(
    "durations_in_progress",
    "Present jobs still in a measured state: the durations not measured yet.",
    _mart(
        _PROJECT,
        _REGION,
        _JOB,
        _DOMAIN,
        _USER,
        _METRIC,
        _c("low_s", "DOUBLE", "Time taken so far, to the job's last observation: a lower bound."),
    ),
)

JOB_DURATIONS_BY_PROJECT = Table(
    "job_durations_by_project",
    "job_durations with project_id and region, and each project's as_of and stale.",
    _mart(_PROJECT, _REGION, _DOMAIN, _USER, _METRIC, *_STATISTICS, _AS_OF, _STALE),
)

JOB_DURATIONS = Table(
    "job_durations",
    "Duration statistics per tenant, user and metric (mean, p50, p90, max), in the "
    "configured projects.",
    _mart(_DOMAIN, _USER, _METRIC, *_STATISTICS),
)

STUCK_JOBS = Table(
    "stuck_jobs",
    "Jobs present now, in the configured projects, that stayed in a status longer than "
    "its threshold.",
    _mart(
        _PROJECT,
        _REGION,
        _JOB,
        _DOMAIN,
        _USER,
        _STATUS,
        _c("create_time", "TIMESTAMP WITH TIME ZONE", "When the job was created, per the API."),
        _c(
            "status_since",
            "TIMESTAMP WITH TIME ZONE",
            "First observation of the current stay in the status (an owner change does not "
            "restart it).",
        ),
        _c(
            "stuck_for_s",
            "DOUBLE",
            "Seconds in the status, from its first observation to the job's last one "
            "(a lower bound; it does not grow while nobody looks).",
        ),
        _c(
            "age_s",
            "DOUBLE",
            "Seconds from creation to the job's last observation (an upper bound of the stay "
            "until then).",
        ),
        _c("threshold_s", "DOUBLE", "The status's threshold (stuck_after_minutes), in seconds."),
        _AS_OF,
        _STALE,
    ),
)

DATABASE_INFO = Table(
    "database_info",
    "What the database holds: projects_from (the embedded simulator or configured "
    "projects), recorded_at.",
    (
        _c("key", "VARCHAR", "projects_from or recorded_at."),
        _c("value", "VARCHAR", "The key's value."),
    ),
)

PUBLICATION = Table(
    "publication",
    "In the published copy only: when it was published, and from which sync.",
    _mart(
        _c("published_at", "TIMESTAMP WITH TIME ZONE", "When the copy was published."),
        _c("sync_id", "VARCHAR", "The latest sync in the copy; NULL if none."),
    ),
)

JOBS_CHANGED_SINCE_MARTS = Table(
    "jobs_changed_since_marts",
    "Jobs whose history changed since the marts were last built (new, changed, back, gone, "
    "or their region or create_time corrected), added by every merge; the marts rebuild "
    "only these jobs' rows of the per-job marts (drs.job_clock, drs.status_transitions, "
    "drs.job_steps), and empty it.",
    (_PROJECT, _JOB),
)

MARTS_BASIS = Table(
    "marts_basis",
    "The last build of the marts (one row): with another digest of their SQL or another "
    "freshness, or without a row, the next build rebuilds the per-job marts for every job.",
    (
        _c("built_at", "TIMESTAMP WITH TIME ZONE", "When the marts were last built."),
        _c("sql_digest", "VARCHAR", "Digest of the marts' SQL that built them."),
        _c("freshness_s", "DOUBLE", "freshness_minutes, in seconds, that built them."),
        _c("rebuilt", "VARCHAR", "'every job' or 'changed jobs'."),
        _c("jobs_rebuilt", "BIGINT", "Jobs whose rows of the per-job marts were rebuilt."),
    ),
)

_KIND = _c(
    "kind",
    "VARCHAR",
    "validate_failed, stuck, project_failed, project_recovered or stale (docs/alerts.md).",
)
_ALERT_ID = _c(
    "alert_id",
    "VARCHAR",
    "md5 of the alert's natural key (kind, project_id, async_job_id, since): raised once.",
)
_WEBHOOK = _c("webhook", "VARCHAR", "The webhook's name in drs.yaml (alerts.webhooks[].name).")

ALERTS = Table(
    "alerts",
    "One row per alert raised: what happened, to which job or project, since when.",
    (
        _ALERT_ID,
        _KIND,
        _PROJECT,
        _c("region", "VARCHAR", "The project's region.", nullable=True),
        _c("async_job_id", "VARCHAR", "The job; NULL for a project's alert.", nullable=True),
        _c(
            "domain_name",
            "VARCHAR",
            "The tenant that owned the job; NULL for a project's alert.",
            nullable=True,
        ),
        _c(
            "user_name",
            "VARCHAR",
            "The IAM user that owned the job; NULL for a project's alert.",
            nullable=True,
        ),
        _c(
            "status",
            "VARCHAR",
            "The job's status, or the project's sync outcome (project_failed, "
            "project_recovered); NULL for stale.",
            nullable=True,
        ),
        _c(
            "since",
            "TIMESTAMP WITH TIME ZONE",
            "When it began: the first observation of the job's status (validate_failed, stuck), "
            "the end of the sync that failed or recovered, or the project's last ok sync (stale).",
        ),
        _c("message", "VARCHAR", "What happened, in one line for people."),
        _c("raised_at", "TIMESTAMP WITH TIME ZONE", "When the alerts step raised it."),
    ),
)

ALERT_DELIVERIES = Table(
    "alert_deliveries",
    "One row per alert and webhook it is sent to: delivered, or still to be sent.",
    (
        _ALERT_ID,
        _WEBHOOK,
        _c("attempts", "INTEGER", "POSTs that carried the alert to the webhook so far."),
        _c(
            "last_attempt_at",
            "TIMESTAMP WITH TIME ZONE",
            "When the latest POST was tried; NULL before the first.",
            nullable=True,
        ),
        _c(
            "delivered_at",
            "TIMESTAMP WITH TIME ZONE",
            "When the webhook accepted it; NULL while it is to be sent (again) next run.",
            nullable=True,
        ),
        _c(
            "last_error",
            "VARCHAR",
            "Why the latest POST failed, naming the webhook (never its URL); NULL once delivered.",
            nullable=True,
        ),
    ),
)

ALERT_BASELINES = Table(
    "alert_baselines",
    "Per project, from when alerts are raised: nothing that began before is alerted.",
    (
        _PROJECT,
        _c(
            "baseline_at",
            "TIMESTAMP WITH TIME ZONE",
            "The alerts step that first found the project configured with an ok sync.",
        ),
    ),
)

# Written by each sync.
HISTORY = (ASYNC_JOBS, ASYNC_JOB_HISTORY, SYNC_RUNS, REJECTED_RECORDS)
# Rebuilt from the history after each sync (marts/*.sql).
MARTS = (
    PROJECT_STATUS,
    STATUS_COUNTS,
    STATUS_COUNTS_BY_PROJECT,
    JOB_CLOCK,
    STATUS_TRANSITIONS,
    JOB_STEPS,
    DURATION_SAMPLES,
    DURATIONS_IN_PROGRESS,
    JOB_DURATIONS,
    JOB_DURATIONS_BY_PROJECT,
    STUCK_JOBS,
)
# Raised from the marts after each run, and their deliveries (drs_pipeline.alerts).
ALERTS_GROUP = (ALERTS, ALERT_DELIVERIES, ALERT_BASELINES)
# Bookkeeping: the guard between real and simulated history, the published copy's stamp,
# and what the marts need to rebuild only what changed.
BOOKKEEPING = (DATABASE_INFO, PUBLICATION, JOBS_CHANGED_SINCE_MARTS, MARTS_BASIS)
TABLES = HISTORY + MARTS + ALERTS_GROUP + BOOKKEEPING


def table(name: str) -> Table:
    """The table called ``name`` (without the schema)."""
    for candidate in TABLES:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def catalog_markdown() -> str:
    """The tables as Markdown, for the docs' table reference (docs/data-model.md)."""
    sections = []
    groups = (
        ("History", HISTORY),
        ("Marts", MARTS),
        ("Alerts", ALERTS_GROUP),
        ("Bookkeeping", BOOKKEEPING),
    )
    for group, tables in groups:
        sections.append(f"### {group}")
        for entry in tables:
            rows = [
                f"| `{c.name}` | `{c.type}`{'' if c.nullable else ' NOT NULL'} | {c.description} |"
                for c in entry.columns
            ]
            sections.append(
                "\n".join(
                    [
                        f"#### `{entry.qualified_name}`",
                        "",
                        entry.description,
                        "",
                        "| column | type | meaning |",
                        "|---|---|---|",
                        *rows,
                    ]
                )
            )
    return "\n\n".join(sections) + "\n"
