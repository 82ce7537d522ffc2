-- How long jobs take, from the history. Every figure carries the resolution of
-- the schedule: a transition is recorded at the first observation after it, so
-- each end point is an upper bound of the real transition time.
-- Jobs are grouped by their current owner (drs.async_jobs).

-- name: duration_samples
-- One row per measured duration, kept for distributions (notebooks, SQL users).
CREATE OR REPLACE TABLE drs.duration_samples AS
WITH firsts AS (
    SELECT
        project_id,
        async_job_id,
        arg_min(status, valid_from) AS first_status,
        min(valid_from) FILTER (WHERE status <> 'ASYNC_JOB_VALIDATING') AS first_not_validating,
        min(valid_from) FILTER (WHERE status = 'COMMIT_SUCCESS') AS first_committed
    FROM drs.async_job_history
    GROUP BY ALL
),
-- Gaps and islands: consecutive intervals of one status (an owner change splits an
-- interval, not the stay in a status) form one run.
ordered AS (
    SELECT
        *,
        lag(status) OVER job_order AS previous_status,
        lag(valid_to) OVER job_order AS previous_valid_to,
        lead(status) OVER job_order AS next_status,
        lead(valid_from) OVER job_order AS next_valid_from
    FROM drs.async_job_history
    WINDOW job_order AS (PARTITION BY project_id, async_job_id ORDER BY valid_from)
),
numbered AS (
    SELECT
        *,
        sum(CASE WHEN status = previous_status AND previous_valid_to = valid_from THEN 0 ELSE 1 END)
            OVER (PARTITION BY project_id, async_job_id ORDER BY valid_from) AS run_number
    FROM ordered
),
runs AS (
    SELECT
        project_id,
        async_job_id,
        any_value(status) AS status,
        min(valid_from) AS started,
        arg_max(valid_to, valid_from) AS ended,
        arg_max(next_status, valid_from) AS next_status,
        arg_max(next_valid_from, valid_from) AS next_valid_from
    FROM numbered
    GROUP BY project_id, async_job_id, run_number
)
SELECT j.project_id, j.region, j.async_job_id, j.domain_name, j.user_name,
       'validation' AS metric,
       epoch(f.first_not_validating) - epoch(j.create_time) AS seconds
FROM firsts AS f
JOIN drs.async_jobs AS j USING (project_id, async_job_id)
-- A job first seen already validated tells nothing exact about its validation.
WHERE f.first_status = 'ASYNC_JOB_VALIDATING' AND f.first_not_validating IS NOT NULL
UNION ALL
SELECT j.project_id, j.region, j.async_job_id, j.domain_name, j.user_name,
       'time_to_commit',
       epoch(f.first_committed) - epoch(j.create_time)
FROM firsts AS f
JOIN drs.async_jobs AS j USING (project_id, async_job_id)
WHERE f.first_status <> 'COMMIT_SUCCESS' AND f.first_committed IS NOT NULL
UNION ALL
-- A run closed by a change of status; a run cut short by the job leaving the
-- list, or still open, is not a dwell time.
SELECT j.project_id, j.region, j.async_job_id, j.domain_name, j.user_name,
       'dwell:' || r.status,
       epoch(r.ended) - epoch(r.started)
FROM runs AS r
JOIN drs.async_jobs AS j USING (project_id, async_job_id)
WHERE r.ended IS NOT NULL AND r.next_valid_from = r.ended AND r.next_status <> r.status;

-- name: job_durations_by_project
CREATE OR REPLACE TABLE drs.job_durations_by_project AS
SELECT
    project_id, region, domain_name, user_name, metric,
    count(*) AS jobs,
    avg(seconds) AS mean_s,
    quantile_cont(seconds, 0.5) AS p50_s,
    quantile_cont(seconds, 0.9) AS p90_s,
    max(seconds) AS max_s
FROM drs.duration_samples
GROUP BY ALL
ORDER BY ALL;

-- name: job_durations
CREATE OR REPLACE TABLE drs.job_durations AS
SELECT
    domain_name, user_name, metric,
    count(*) AS jobs,
    avg(seconds) AS mean_s,
    quantile_cont(seconds, 0.5) AS p50_s,
    quantile_cont(seconds, 0.9) AS p90_s,
    max(seconds) AS max_s
FROM drs.duration_samples
GROUP BY ALL
ORDER BY ALL;
