-- Every change of status of every job, bounded on both sides by observations.
-- Both statements are per job: a query whose rows for a job depend on that job's
-- history and clock alone, for the jobs of marts_scope. warehouse/marts.py makes
-- each a table for every job, or replaces only the rows of the jobs whose history
-- changed since the last build (drs.jobs_changed_since_marts): an observation that
-- only moved last_seen_at changes no row here (docs/decisions/0012-marts-rebuild-what-changed.md).

-- name: job_clock
-- Each job's create_time on our clock, the clock of every observation: the API's
-- create_time less the server's clock offset (drs.sync_runs.server_clock_offset_s)
-- that the project's latest sync started by the job's first observation measured
-- (none measured: no correction), and never later than that first observation,
-- when the job certainly existed.
-- seen_from_start: the history watched the job from its start. The project's last ok
-- sync before the job's first observation began before the job was created (give or
-- take 2 s: create_time is to the second, and so is the offset), and ended less than
-- freshness_minutes ($freshness_s) before that first observation, so no outage hid
-- the job's first minutes. A job first seen later, even validating, may be in its
-- second validation round already. (A whole round of statuses that comes and goes
-- between two observations is hidden from any history.)
WITH clock AS (
    SELECT
        j.project_id,
        j.async_job_id,
        j.first_seen_at,
        least(
            j.create_time - to_seconds(coalesce(o.server_clock_offset_s, 0)), j.first_seen_at
        ) AS created_at
    FROM drs.async_jobs AS j
    SEMI JOIN marts_scope USING (project_id, async_job_id)
    ASOF LEFT JOIN (
        SELECT project_id, started_at, server_clock_offset_s
        FROM drs.sync_runs
        WHERE server_clock_offset_s IS NOT NULL
    ) AS o
        ON o.project_id = j.project_id AND j.first_seen_at >= o.started_at
)
SELECT
    c.project_id,
    c.async_job_id,
    c.created_at,
    coalesce(
        epoch(c.created_at) >= epoch(previous.started_at) - 2
            AND epoch(c.first_seen_at) - epoch(previous.finished_at) <= $freshness_s,
        false
    ) AS seen_from_start
FROM clock AS c
ASOF LEFT JOIN (
    SELECT project_id, started_at, finished_at FROM drs.sync_runs WHERE outcome = 'ok'
) AS previous
    ON previous.project_id = c.project_id AND c.first_seen_at > previous.finished_at;

-- name: status_transitions
-- A stay is a run of intervals in one status: an owner change splits an interval,
-- not the stay, and a job that left the list and came back in the same status is
-- taken to have stayed in it. Each stay's first row is the transition into it:
-- after not_before, the last observation of the stay before (for a job's first
-- stay, its create_time when it was first seen in ASYNC_JOB_VALIDATING, where
-- every job starts, and unknown otherwise), and no later than not_after, the
-- stay's first observation. Owners are those of the stay's first interval.
-- Most jobs have one interval, begun at their first observation (status_since =
-- first_seen_at: every later interval moves status_since): their one row comes
-- from drs.async_jobs alone, and only the others' intervals are put in order,
-- which is what costs (docs/decisions/0008-duration-bounds.md).
WITH movers AS (
    SELECT project_id, async_job_id
    FROM drs.async_jobs
    SEMI JOIN marts_scope USING (project_id, async_job_id)
    WHERE status_since <> first_seen_at
),
marked AS (
    SELECT
        *,
        status IS DISTINCT FROM lag(status) OVER job_order AS starts_stay
    FROM drs.async_job_history
    SEMI JOIN movers USING (project_id, async_job_id)
    WINDOW job_order AS (PARTITION BY project_id, async_job_id ORDER BY valid_from)
),
numbered AS (
    SELECT
        *,
        sum(starts_stay::INTEGER) OVER (
            PARTITION BY project_id, async_job_id ORDER BY valid_from
        ) AS stay
    FROM marked
),
stays AS (
    SELECT
        project_id,
        async_job_id,
        stay,
        any_value(status) AS status,
        arg_min(domain_name, valid_from) AS domain_name,
        arg_min(user_name, valid_from) AS user_name,
        min(valid_from) AS first_seen_in,
        max(last_seen_at) AS last_seen_in
    FROM numbered
    GROUP BY project_id, async_job_id, stay
)
SELECT
    j.project_id,
    j.region,
    j.async_job_id,
    j.domain_name,
    j.user_name,
    NULL::VARCHAR AS from_status,
    j.status AS to_status,
    CASE WHEN j.status = 'ASYNC_JOB_VALIDATING' THEN c.created_at END AS not_before,
    j.first_seen_at AS not_after
FROM drs.async_jobs AS j
SEMI JOIN marts_scope USING (project_id, async_job_id)
JOIN drs.job_clock AS c USING (project_id, async_job_id)
WHERE j.status_since = j.first_seen_at
UNION ALL
SELECT
    s.project_id,
    j.region,
    s.async_job_id,
    s.domain_name,
    s.user_name,
    lag(s.status) OVER stay_order AS from_status,
    s.status AS to_status,
    CASE
        WHEN s.stay > 1 THEN lag(s.last_seen_in) OVER stay_order
        WHEN s.status = 'ASYNC_JOB_VALIDATING' THEN c.created_at
    END AS not_before,
    s.first_seen_in AS not_after
FROM stays AS s
JOIN drs.async_jobs AS j USING (project_id, async_job_id)
JOIN drs.job_clock AS c USING (project_id, async_job_id)
WINDOW stay_order AS (PARTITION BY s.project_id, s.async_job_id ORDER BY s.stay);
