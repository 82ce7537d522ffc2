-- Queries that return the rows breaking a promise of the history; empty means
-- the promise holds. They read checked_jobs and checked_history, views that the
-- caller points at the tables to check: the history's (warehouse/health.py), or
-- the merge's copies of the rows it wrote (merge_checks.sql). $project_id NULL
-- checks every project. Used before each merge commits, by the Dagster asset
-- checks, and by the tests.

-- name: jobs_stored_twice
SELECT project_id, async_job_id, count(*) AS copies
FROM checked_jobs
WHERE $project_id IS NULL OR project_id = $project_id
GROUP BY ALL
HAVING count(*) > 1
ORDER BY ALL;

-- name: open_interval_count_wrong
-- A job that is not gone has exactly one open interval; a gone job none.
SELECT j.project_id, j.async_job_id, j.is_gone, count(h.async_job_id) AS open_intervals
FROM checked_jobs AS j
LEFT JOIN checked_history AS h
    ON h.project_id = j.project_id AND h.async_job_id = j.async_job_id AND h.valid_to IS NULL
WHERE $project_id IS NULL OR j.project_id = $project_id
GROUP BY ALL
HAVING count(h.async_job_id) <> CASE WHEN j.is_gone THEN 0 ELSE 1 END
ORDER BY ALL;

-- name: empty_or_inverted_intervals
SELECT project_id, async_job_id, status, valid_from, valid_to
FROM checked_history
WHERE ($project_id IS NULL OR project_id = $project_id)
  AND valid_to IS NOT NULL AND valid_from >= valid_to
ORDER BY ALL;

-- name: last_seen_outside_interval
-- An interval's last observation lies within it.
SELECT project_id, async_job_id, status, valid_from, last_seen_at, valid_to
FROM checked_history
WHERE ($project_id IS NULL OR project_id = $project_id)
  AND (last_seen_at < valid_from OR last_seen_at >= valid_to)
ORDER BY ALL;

-- name: overlapping_intervals
SELECT project_id, async_job_id, valid_from, valid_to, next_valid_from
FROM (
    SELECT *, lead(valid_from) OVER (
        PARTITION BY project_id, async_job_id ORDER BY valid_from
    ) AS next_valid_from
    FROM checked_history
    WHERE $project_id IS NULL OR project_id = $project_id
)
WHERE next_valid_from IS NOT NULL AND (valid_to IS NULL OR next_valid_from < valid_to)
ORDER BY ALL;

-- name: current_state_disagrees_with_history
SELECT j.project_id, j.async_job_id, j.status, h.status AS history_status,
       j.last_seen_at, h.last_seen_at AS history_last_seen_at
FROM checked_jobs AS j
JOIN checked_history AS h
    ON h.project_id = j.project_id AND h.async_job_id = j.async_job_id AND h.valid_to IS NULL
WHERE ($project_id IS NULL OR j.project_id = $project_id)
  AND (h.status <> j.status OR h.domain_name <> j.domain_name
       OR h.user_name <> j.user_name OR h.valid_from <> j.status_since
       OR h.last_seen_at <> j.last_seen_at)
ORDER BY ALL;

-- name: history_of_unknown_jobs
SELECT DISTINCT project_id, async_job_id
FROM checked_history
ANTI JOIN checked_jobs USING (project_id, async_job_id)
WHERE $project_id IS NULL OR project_id = $project_id
ORDER BY ALL;
