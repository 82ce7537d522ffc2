-- How long jobs take, from drs.status_transitions. Each duration is bounded: low_s
-- and high_s come from the transitions' bounds (observations on our clock, and
-- create_time corrected onto it), and seconds is their midpoint. A stay whose start
-- is unknown is never measured: the job was first seen already in it, unless it was
-- seen from its start (drs.job_clock.seen_from_start) in ASYNC_JOB_VALIDATING. A stay
-- still under way is not measured yet but counted, as in progress. Jobs are grouped
-- by their current owner.

-- name: job_steps
-- Each job's stays in order: when each began (after began_after and by began_by) and
-- when it ended (the transition out of it; NULL while it lasts, so the last step has
-- none). A job's first stay began exactly at its create_time if it was seen from its
-- start in ASYNC_JOB_VALIDATING, after it and by the first observation if seen from
-- its start further on in the lifecycle, and at an unknown time otherwise
-- (began_after NULL). Jobs with one interval (most) need no ordering.
-- Per job, like status_transitions (warehouse/marts.py): a query for the jobs of
-- marts_scope, from their transitions, clocks and current rows alone.
WITH movers AS (
    -- As in status_transitions: the jobs with more than one interval.
    SELECT *
    FROM drs.status_transitions
    SEMI JOIN marts_scope USING (project_id, async_job_id)
    SEMI JOIN (
        SELECT project_id, async_job_id FROM drs.async_jobs WHERE status_since <> first_seen_at
    ) USING (project_id, async_job_id)
),
ordered AS (
    SELECT
        t.project_id,
        t.async_job_id,
        t.from_status,
        t.to_status,
        t.not_before,
        t.not_after,
        row_number() OVER job_order AS step,
        lead(t.not_before) OVER job_order AS ended_after,
        lead(t.not_after) OVER job_order AS ended_by
    FROM movers AS t
    WINDOW job_order AS (PARTITION BY t.project_id, t.async_job_id ORDER BY t.not_after)
),
steps AS (
    SELECT
        t.project_id, t.async_job_id, t.from_status, t.to_status, t.not_before, t.not_after,
        1 AS step, NULL::TIMESTAMPTZ AS ended_after, NULL::TIMESTAMPTZ AS ended_by
    FROM drs.status_transitions AS t
    SEMI JOIN marts_scope USING (project_id, async_job_id)
    ANTI JOIN movers USING (project_id, async_job_id)
    UNION ALL
    FROM ordered
)
SELECT
    s.project_id,
    s.async_job_id,
    s.to_status AS status,
    s.step,
    CASE
        WHEN s.from_status IS NOT NULL THEN s.not_before
        WHEN c.seen_from_start AND s.to_status IN (
            'ASYNC_JOB_VALIDATING', 'ASYNC_JOB_VALIDATE_FAILED',
            'AUTO_PARAM_VALIDATE_SUCCESS', 'COMMIT_SUCCESS'
        ) THEN c.created_at
    END AS began_after,
    CASE
        WHEN s.from_status IS NOT NULL THEN s.not_after
        WHEN c.seen_from_start AND s.to_status = 'ASYNC_JOB_VALIDATING' THEN c.created_at
        WHEN c.seen_from_start AND s.to_status IN (
            'ASYNC_JOB_VALIDATE_FAILED', 'AUTO_PARAM_VALIDATE_SUCCESS', 'COMMIT_SUCCESS'
        ) THEN s.not_after
    END AS began_by,
    s.ended_after,
    s.ended_by,
    c.created_at,
    -- The stay's first observation.
    s.not_after AS first_seen_in
FROM steps AS s
JOIN drs.job_clock AS c USING (project_id, async_job_id);

-- name: duration_samples
CREATE OR REPLACE TABLE drs.duration_samples AS
WITH measured AS (
    -- validation: from create_time until the job first left ASYNC_JOB_VALIDATING, for
    -- jobs seen from their start: when their first stay ended if it was validating,
    -- else when it began (a validation over before the first observation, and often
    -- the fastest: leaving those out would make the figures too slow).
    SELECT project_id, async_job_id, 'validation' AS metric,
           CASE WHEN status = 'ASYNC_JOB_VALIDATING' THEN epoch(ended_after)
                ELSE epoch(began_after) END - epoch(created_at) AS low_s,
           CASE WHEN status = 'ASYNC_JOB_VALIDATING' THEN epoch(ended_by)
                ELSE epoch(began_by) END - epoch(created_at) AS high_s
    FROM drs.job_steps
    WHERE step = 1 AND began_after IS NOT NULL
      AND (status <> 'ASYNC_JOB_VALIDATING' OR ended_by IS NOT NULL)
    UNION ALL
    -- time_to_commit: from create_time until the job first entered COMMIT_SUCCESS,
    -- for jobs seen before it, or seen from their start.
    SELECT s.project_id, s.async_job_id, 'time_to_commit',
           epoch(s.began_after) - epoch(s.created_at),
           epoch(s.began_by) - epoch(s.created_at)
    FROM drs.job_steps AS s
    WHERE s.status = 'COMMIT_SUCCESS'
    QUALIFY s.step = min(s.step) OVER (PARTITION BY s.project_id, s.async_job_id)
        AND s.began_after IS NOT NULL
    UNION ALL
    -- dwell: every stay whose start and end are both known.
    SELECT project_id, async_job_id, 'dwell:' || status,
           epoch(ended_after) - epoch(began_by),
           epoch(ended_by) - epoch(began_after)
    FROM drs.job_steps
    WHERE began_after IS NOT NULL AND ended_by IS NOT NULL
)
SELECT j.project_id, j.region, j.async_job_id, j.domain_name, j.user_name, m.metric,
       (m.low_s + m.high_s) / 2 AS seconds, m.low_s, m.high_s
FROM measured AS m
JOIN drs.async_jobs AS j USING (project_id, async_job_id);

-- name: durations_in_progress
-- Present jobs of the configured projects whose duration is still being measured:
-- validating since they were seen to start, not committed yet, or in a stay that
-- began in sight and has not ended. Stays in COMMIT_SUCCESS, legacy or unknown
-- statuses are not in progress: they are where jobs end. low_s is the time taken so
-- far: a lower bound of what will be measured.
CREATE OR REPLACE TABLE drs.durations_in_progress AS
WITH left_commit AS (
    -- Jobs committed and then seen in another status (rare): not waiting for a commit.
    SELECT DISTINCT project_id, async_job_id
    FROM drs.job_steps
    WHERE status = 'COMMIT_SUCCESS' AND ended_by IS NOT NULL
),
current_steps AS (
    -- The last step has no end.
    SELECT s.*, j.region, j.domain_name, j.user_name, j.last_seen_at,
           k.async_job_id IS NOT NULL AS committed
    FROM drs.job_steps AS s
    JOIN drs.async_jobs AS j USING (project_id, async_job_id)
    LEFT JOIN left_commit AS k USING (project_id, async_job_id)
    WHERE s.ended_by IS NULL AND NOT j.is_gone
      AND s.status IN (
          'ASYNC_JOB_VALIDATING', 'ASYNC_JOB_VALIDATE_FAILED', 'AUTO_PARAM_VALIDATE_SUCCESS'
      )
      AND j.project_id IN (SELECT project_id FROM configured_projects)
)
SELECT project_id, region, async_job_id, domain_name, user_name, 'validation' AS metric,
       epoch(last_seen_at) - epoch(began_after) AS low_s
FROM current_steps
WHERE step = 1 AND status = 'ASYNC_JOB_VALIDATING' AND began_after IS NOT NULL
UNION ALL
SELECT project_id, region, async_job_id, domain_name, user_name, 'time_to_commit',
       epoch(last_seen_at) - epoch(created_at)
FROM current_steps
WHERE NOT committed
UNION ALL
SELECT project_id, region, async_job_id, domain_name, user_name, 'dwell:' || status,
       epoch(last_seen_at) - epoch(began_by)
FROM current_steps
WHERE began_after IS NOT NULL;

-- name: job_durations_by_project
-- The configured projects' durations (drs.duration_samples keeps every project's), each
-- row with its project's as_of and stale (drs.project_status).
CREATE OR REPLACE TABLE drs.job_durations_by_project AS
WITH measured AS (
    SELECT
        project_id, region, domain_name, user_name, metric,
        count(*) AS jobs,
        avg(seconds) AS mean_s,
        quantile_cont(seconds, 0.5) AS p50_s,
        quantile_cont(seconds, 0.9) AS p90_s,
        max(seconds) AS max_s,
        quantile_cont(high_s - low_s, 0.5) AS resolution_s
    FROM drs.duration_samples
    WHERE project_id IN (SELECT project_id FROM configured_projects)
    GROUP BY ALL
),
waiting AS (
    SELECT project_id, region, domain_name, user_name, metric, count(*) AS in_progress
    FROM drs.durations_in_progress
    GROUP BY ALL
)
SELECT
    project_id, region, domain_name, user_name, metric,
    coalesce(m.jobs, 0) AS jobs, m.mean_s, m.p50_s, m.p90_s, m.max_s,
    coalesce(w.in_progress, 0) AS in_progress, m.resolution_s,
    p.last_ok_sync_at AS as_of, p.stale
FROM measured AS m
FULL OUTER JOIN waiting AS w USING (project_id, region, domain_name, user_name, metric)
JOIN drs.project_status AS p USING (project_id)
ORDER BY ALL;

-- name: job_durations
-- The configured projects' durations per owner.
CREATE OR REPLACE TABLE drs.job_durations AS
WITH measured AS (
    SELECT
        domain_name, user_name, metric,
        count(*) AS jobs,
        avg(seconds) AS mean_s,
        quantile_cont(seconds, 0.5) AS p50_s,
        quantile_cont(seconds, 0.9) AS p90_s,
        max(seconds) AS max_s,
        quantile_cont(high_s - low_s, 0.5) AS resolution_s
    FROM drs.duration_samples
    WHERE project_id IN (SELECT project_id FROM configured_projects)
    GROUP BY ALL
),
waiting AS (
    SELECT domain_name, user_name, metric, count(*) AS in_progress
    FROM drs.durations_in_progress
    GROUP BY ALL
)
SELECT
    domain_name, user_name, metric,
    coalesce(m.jobs, 0) AS jobs, m.mean_s, m.p50_s, m.p90_s, m.max_s,
    coalesce(w.in_progress, 0) AS in_progress, m.resolution_s
FROM measured AS m
FULL OUTER JOIN waiting AS w USING (domain_name, user_name, metric)
ORDER BY ALL;
