-- The SCD2 merge of one project's snapshot into the history, run in one
-- transaction by warehouse.store. Inputs:
--   snapshot        one row per async_job_id: the newest observation of each job
--                   seen in this sync (project_id, region, async_job_id, status,
--                   domain_name, user_name, create_time, observed_at)
--   confirmed_gone  async_job_id of jobs the API confirmed absent (may be empty)
--   $project_id, $gone_at
-- Statements are separated by `-- name:` markers and run in order.

-- name: stage
-- Classify each observation against the current state. An observation no newer
-- than what the history already knows of that job (clocks are not perfect) is
-- stale: applying it would make intervals overlap, so it is left out.
CREATE OR REPLACE TEMP TABLE merge_stage AS
SELECT
    s.*,
    c.async_job_id IS NULL AS is_new,
    coalesce(c.is_gone, false) AS was_gone,
    c.async_job_id IS NOT NULL
        AND s.observed_at <= greatest(c.last_seen_at, coalesce(c.gone_at, c.last_seen_at))
        AS is_stale,
    c.async_job_id IS NOT NULL
        AND (c.status <> s.status
             OR c.domain_name <> s.domain_name
             OR c.user_name <> s.user_name) AS is_changed
FROM snapshot AS s
LEFT JOIN drs.async_jobs AS c
    ON c.project_id = $project_id AND c.async_job_id = s.async_job_id;

-- name: close_changed_intervals
UPDATE drs.async_job_history AS h
SET valid_to = st.observed_at
FROM merge_stage AS st
WHERE h.project_id = $project_id
  AND h.async_job_id = st.async_job_id
  AND h.valid_to IS NULL
  AND st.is_changed AND NOT st.is_stale AND NOT st.was_gone;

-- name: open_intervals
-- New jobs, changed jobs and jobs that came back each start an interval.
INSERT INTO drs.async_job_history
SELECT project_id, async_job_id, status, domain_name, user_name, observed_at, NULL
FROM merge_stage
WHERE is_new OR (NOT is_stale AND (is_changed OR was_gone));

-- name: insert_new_jobs
INSERT INTO drs.async_jobs
SELECT project_id, region, async_job_id, status, domain_name, user_name, create_time,
       observed_at, observed_at, observed_at, false, NULL
FROM merge_stage
WHERE is_new;

-- name: update_seen_jobs
UPDATE drs.async_jobs AS j
SET status = st.status,
    domain_name = st.domain_name,
    user_name = st.user_name,
    region = st.region,
    create_time = st.create_time,
    last_seen_at = st.observed_at,
    status_since = CASE WHEN st.is_changed OR st.was_gone THEN st.observed_at
                        ELSE j.status_since END,
    is_gone = false,
    gone_at = NULL
FROM merge_stage AS st
WHERE j.project_id = $project_id
  AND j.async_job_id = st.async_job_id
  AND NOT st.is_new AND NOT st.is_stale;

-- name: stage_gone
-- Only jobs the API confirmed absent, that are not gone already, and whose open
-- interval started before the gone time (so valid_from < valid_to holds).
CREATE OR REPLACE TEMP TABLE merge_gone AS
SELECT j.async_job_id
FROM drs.async_jobs AS j
JOIN confirmed_gone AS g ON g.async_job_id = j.async_job_id
WHERE j.project_id = $project_id
  AND NOT j.is_gone
  AND j.status_since < $gone_at;

-- name: close_gone_intervals
UPDATE drs.async_job_history AS h
SET valid_to = $gone_at
FROM merge_gone AS g
WHERE h.project_id = $project_id
  AND h.async_job_id = g.async_job_id
  AND h.valid_to IS NULL;

-- name: mark_gone
UPDATE drs.async_jobs AS j
SET is_gone = true, gone_at = $gone_at
FROM merge_gone AS g
WHERE j.project_id = $project_id AND j.async_job_id = g.async_job_id;

-- name: counts
SELECT
    (SELECT count(*) FROM merge_stage WHERE is_new) AS new_jobs,
    (SELECT count(*) FROM merge_stage
      WHERE NOT is_new AND NOT is_stale AND (is_changed OR was_gone)) AS changed_jobs,
    (SELECT count(*) FROM merge_gone) AS gone_jobs;
