-- The reading side's longer questions (explore.py), asked of the published copy.
-- Parameters are named. A filter given as NULL selects everything: $project_id,
-- $domain_name and $user_name; $created_from (inclusive) and $created_to (exclusive)
-- select jobs by their create_time. $per_user groups by tenant and user when true,
-- by tenant alone (user_name NULL) when false.

-- name: duration_samples
-- Every measured duration of the selected jobs, shortest first within each metric.
WITH selected AS (
    SELECT project_id, async_job_id
    FROM drs.async_jobs
    WHERE ($created_from IS NULL OR create_time >= $created_from)
      AND ($created_to IS NULL OR create_time < $created_to)
)
SELECT *
FROM drs.duration_samples
SEMI JOIN selected USING (project_id, async_job_id)
WHERE ($metric IS NULL OR metric = $metric)
  AND ($project_id IS NULL OR project_id = $project_id)
  AND ($domain_name IS NULL OR domain_name = $domain_name)
  AND ($user_name IS NULL OR user_name = $user_name)
ORDER BY metric, seconds, project_id, async_job_id;

-- name: duration_bounds
-- Statistics of the samples as drs.job_durations computes them (on the midpoints),
-- beside the same percentiles of low_s and of high_s. Every true duration lies in
-- [low_s, high_s], and a percentile never decreases when each value it is taken of
-- grows, so the true percentile lies in [pNN_low_s, pNN_high_s]. Jobs still in the
-- measured state are counted (in_progress) with the longest time so far, a lower
-- bound of what they will measure. Owners are the jobs' current ones, as in the marts.
WITH selected AS (
    SELECT project_id, async_job_id
    FROM drs.async_jobs
    WHERE ($created_from IS NULL OR create_time >= $created_from)
      AND ($created_to IS NULL OR create_time < $created_to)
),
measures AS (
    SELECT project_id, async_job_id, domain_name, user_name, metric,
           seconds, low_s, high_s, NULL::DOUBLE AS so_far_s
    FROM drs.duration_samples
    UNION ALL
    SELECT project_id, async_job_id, domain_name, user_name, metric,
           NULL, NULL, NULL, low_s
    FROM drs.durations_in_progress
)
SELECT
    domain_name,
    CASE WHEN $per_user THEN user_name END AS user_name,
    metric,
    count(seconds) AS jobs,
    avg(seconds) AS mean_s,
    quantile_cont(seconds, 0.5) AS p50_s,
    quantile_cont(seconds, 0.9) AS p90_s,
    max(seconds) AS max_s,
    count(so_far_s) AS in_progress,
    quantile_cont(high_s - low_s, 0.5) AS resolution_s,
    quantile_cont(low_s, 0.5) AS p50_low_s,
    quantile_cont(high_s, 0.5) AS p50_high_s,
    quantile_cont(low_s, 0.9) AS p90_low_s,
    quantile_cont(high_s, 0.9) AS p90_high_s,
    max(so_far_s) AS longest_in_progress_s
FROM measures
SEMI JOIN selected USING (project_id, async_job_id)
WHERE ($metric IS NULL OR metric = $metric)
  AND ($project_id IS NULL OR project_id = $project_id)
  AND ($domain_name IS NULL OR domain_name = $domain_name)
  AND ($user_name IS NULL OR user_name = $user_name)
GROUP BY ALL
ORDER BY ALL;

-- name: validation_pass_rate
-- First-time validation: of the jobs seen from their start that have left
-- ASYNC_JOB_VALIDATING (exactly the jobs the validation metric measures, so a job first
-- seen validating in what may be its second round does not count), how many first
-- went on to AUTO_PARAM_VALIDATE_SUCCESS (or straight to COMMIT_SUCCESS, seen after a
-- success passed between two observations) and how many to ASYNC_JOB_VALIDATE_FAILED;
-- other: any other status. A job that left the list while validating gave no verdict.
-- still_validating: present jobs seen from their start and validating still.
WITH selected AS (
    SELECT project_id, async_job_id
    FROM drs.async_jobs
    WHERE ($created_from IS NULL OR create_time >= $created_from)
      AND ($created_to IS NULL OR create_time < $created_to)
),
first_exit AS (
    -- The first status after ASYNC_JOB_VALIDATING: a job seen from its start but first
    -- seen further on had left it by its first observation, for that status.
    SELECT project_id, async_job_id, to_status
    FROM drs.status_transitions
    WHERE from_status = 'ASYNC_JOB_VALIDATING'
       OR (from_status IS NULL AND to_status <> 'ASYNC_JOB_VALIDATING')
    QUALIFY row_number() OVER (PARTITION BY project_id, async_job_id ORDER BY not_after) = 1
),
verdicts AS (
    SELECT s.project_id, s.async_job_id, s.domain_name, s.user_name, e.to_status
    FROM drs.duration_samples AS s
    JOIN first_exit AS e USING (project_id, async_job_id)
    WHERE s.metric = 'validation'
    UNION ALL
    SELECT project_id, async_job_id, domain_name, user_name, NULL
    FROM drs.durations_in_progress
    WHERE metric = 'validation'
),
counted AS (
    SELECT
        domain_name,
        CASE WHEN $per_user THEN user_name END AS user_name,
        count(to_status) AS left_validating,
        count(*) FILTER (
            WHERE to_status IN ('AUTO_PARAM_VALIDATE_SUCCESS', 'COMMIT_SUCCESS')
        ) AS passed,
        count(*) FILTER (WHERE to_status = 'ASYNC_JOB_VALIDATE_FAILED') AS failed,
        count(*) FILTER (WHERE to_status IS NULL) AS still_validating
    FROM verdicts
    SEMI JOIN selected USING (project_id, async_job_id)
    WHERE ($project_id IS NULL OR project_id = $project_id)
      AND ($domain_name IS NULL OR domain_name = $domain_name)
      AND ($user_name IS NULL OR user_name = $user_name)
    GROUP BY ALL
)
SELECT
    domain_name,
    user_name,
    left_validating,
    passed,
    failed,
    left_validating - passed - failed AS other,
    passed / nullif(passed + failed, 0) AS pass_rate,
    still_validating
FROM counted
ORDER BY ALL;

-- name: backlog_span
-- The first observation of the selected intervals, and the copy's last observation
-- (of any job): the default window of the backlog.
SELECT
    (
        SELECT min(valid_from)
        FROM drs.async_job_history
        WHERE ($project_id IS NULL OR project_id = $project_id)
          AND ($domain_name IS NULL OR domain_name = $domain_name)
          AND ($user_name IS NULL OR user_name = $user_name)
    ) AS first_observation,
    (SELECT max(coalesce(valid_to, last_seen_at)) FROM drs.async_job_history) AS last_observation;

-- name: backlog
-- Jobs in each status at each instant of $grid, from the history's intervals, under
-- the owner of the time. A closed interval counts from valid_from until just before
-- valid_to (the first observation of the next status, or of the job gone). An open
-- one counts through the last moment its job is known to be in it: the copy's last
-- observation if its project is configured and not stale (as drs.status_counts takes
-- its jobs as present now), else the project's last look (the interval's
-- last_seen_at, or the project's last ok sync if later), so a project nobody looks at
-- stops counting instead of growing. Every status of the selected intervals has a row
-- at every instant, 0 when no job was in it.
WITH history_end AS (
    SELECT max(coalesce(valid_to, last_seen_at)) AS last_observation
    FROM drs.async_job_history
),
intervals AS (
    SELECT
        h.status,
        h.valid_from,
        h.valid_to,
        CASE
            WHEN p.configured AND NOT p.stale THEN e.last_observation
            ELSE greatest(h.last_seen_at, p.last_ok_sync_at)
        END AS seen_until
    FROM drs.async_job_history AS h
    LEFT JOIN drs.project_status AS p USING (project_id)
    CROSS JOIN history_end AS e
    WHERE ($project_id IS NULL OR h.project_id = $project_id)
      AND ($domain_name IS NULL OR h.domain_name = $domain_name)
      AND ($user_name IS NULL OR h.user_name = $user_name)
),
grid AS (
    SELECT unnest($grid::TIMESTAMPTZ[]) AS instant
),
statuses AS (
    SELECT DISTINCT status FROM intervals
)
SELECT g.instant, s.status, count(i.status) AS jobs
FROM grid AS g
CROSS JOIN statuses AS s
LEFT JOIN intervals AS i
    ON i.status = s.status
   AND i.valid_from <= g.instant
   AND (g.instant < i.valid_to OR (i.valid_to IS NULL AND g.instant <= i.seen_until))
GROUP BY ALL
ORDER BY instant, status;
