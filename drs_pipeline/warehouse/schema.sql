-- The history of DRS batch async jobs. All times are TIMESTAMPTZ in UTC.
-- No primary keys: they slow bulk loads, and the merge keeps the keys unique
-- by construction (tests and asset checks verify it).

CREATE SCHEMA IF NOT EXISTS drs;

-- Current state: one row per (project_id, async_job_id) ever seen.
CREATE TABLE IF NOT EXISTS drs.async_jobs (
    project_id    VARCHAR NOT NULL,
    region        VARCHAR NOT NULL,
    async_job_id  VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    domain_name   VARCHAR NOT NULL,
    user_name     VARCHAR NOT NULL,
    create_time   TIMESTAMPTZ NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    status_since  TIMESTAMPTZ NOT NULL,  -- start of the current interval
    is_gone       BOOLEAN NOT NULL,
    gone_at       TIMESTAMPTZ            -- when a complete listing first lacked it
);

-- Every interval a job spent with one (status, domain_name, user_name).
-- valid_to is NULL for the current interval of a job that is not gone.
-- last_seen_at is the last observation within the interval: a change of status
-- happened between one interval's last_seen_at and the next one's valid_from.
-- (A history written before last_seen_at existed gains it on opening: upgrades.sql.)
CREATE TABLE IF NOT EXISTS drs.async_job_history (
    project_id   VARCHAR NOT NULL,
    async_job_id VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,
    domain_name  VARCHAR NOT NULL,
    user_name    VARCHAR NOT NULL,
    valid_from   TIMESTAMPTZ NOT NULL,
    valid_to     TIMESTAMPTZ,
    last_seen_at TIMESTAMPTZ NOT NULL
);

-- One row per project per sync.
CREATE TABLE IF NOT EXISTS drs.sync_runs (
    sync_id          VARCHAR NOT NULL,
    project_id       VARCHAR NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ NOT NULL,
    outcome          VARCHAR NOT NULL CHECK (outcome IN ('ok', 'incomplete', 'failed')),
    error            VARCHAR,
    pages            INTEGER NOT NULL,
    jobs_seen        INTEGER NOT NULL,
    total_count      INTEGER,
    new_jobs         INTEGER NOT NULL,
    changed_jobs     INTEGER NOT NULL,
    gone_jobs        INTEGER NOT NULL,
    rejected_records INTEGER NOT NULL
);
-- Added later: every request sent for the project (pages, look-ups by id,
-- retries); NULL in rows written before it was counted.
ALTER TABLE drs.sync_runs ADD COLUMN IF NOT EXISTS requests INTEGER;
-- Added later: the API server's clock minus ours, in seconds, from the Date headers
-- of the project's pages; NULL when none carried one (or the row is older).
ALTER TABLE drs.sync_runs ADD COLUMN IF NOT EXISTS server_clock_offset_s DOUBLE;

-- Records the API returned that could not be read, kept with the reason.
CREATE TABLE IF NOT EXISTS drs.rejected_records (
    sync_id    VARCHAR NOT NULL,
    project_id VARCHAR NOT NULL,
    record     VARCHAR NOT NULL,  -- the raw JSON as received
    reason     VARCHAR NOT NULL
);

-- Alerts (drs_pipeline/alerts, warehouse/alerts.sql): one row per alert, raised
-- once by its natural key, whose md5 is alert_id.
CREATE TABLE IF NOT EXISTS drs.alerts (
    alert_id     VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    project_id   VARCHAR NOT NULL,
    region       VARCHAR,
    async_job_id VARCHAR,
    domain_name  VARCHAR,
    user_name    VARCHAR,
    status       VARCHAR,
    since        TIMESTAMPTZ NOT NULL,
    message      VARCHAR NOT NULL,
    raised_at    TIMESTAMPTZ NOT NULL
);

-- One row per alert and webhook it is sent to; delivered_at NULL: sent next run.
CREATE TABLE IF NOT EXISTS drs.alert_deliveries (
    alert_id        VARCHAR NOT NULL,
    webhook         VARCHAR NOT NULL,
    attempts        INTEGER NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    last_error      VARCHAR  -- names the webhook and the HTTP status, never the URL
);

-- Per project, the alerts step that first found it configured with an ok sync:
-- nothing that began before raises an alert.
CREATE TABLE IF NOT EXISTS drs.alert_baselines (
    project_id  VARCHAR NOT NULL,
    baseline_at TIMESTAMPTZ NOT NULL
);

-- Jobs whose history changed since the marts were last built (every merge adds the
-- jobs it made new, changed, brought back, marked gone, or whose region or
-- create_time it corrected): the marts rebuild only their rows of the per-job marts
-- (drs.job_clock, drs.status_transitions, drs.job_steps), and empty this in the same
-- transaction (warehouse/marts.py).
CREATE TABLE IF NOT EXISTS drs.jobs_changed_since_marts (
    project_id   VARCHAR NOT NULL,
    async_job_id VARCHAR NOT NULL
);

-- The last build of the marts: what the per-job marts' rows of unchanged jobs were
-- computed with. Another digest of the marts' SQL or another freshness, or no row
-- (a history the marts never built, or an earlier version's), and the next build
-- rebuilds them for every job.
CREATE TABLE IF NOT EXISTS drs.marts_basis (
    built_at     TIMESTAMPTZ NOT NULL,
    sql_digest   VARCHAR NOT NULL,
    freshness_s  DOUBLE NOT NULL,
    rebuilt      VARCHAR NOT NULL,  -- 'every job' or 'changed jobs'
    jobs_rebuilt BIGINT NOT NULL
);
