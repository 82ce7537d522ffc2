-- Jobs present now that have stayed in a status longer than its threshold
-- (stuck_thresholds: status, threshold_s; from the configuration), as of $as_of.
-- stuck_for_s counts from the first observation of the status: a lower bound.

-- name: stuck_jobs
CREATE OR REPLACE TABLE drs.stuck_jobs AS
SELECT
    j.project_id,
    j.region,
    j.async_job_id,
    j.domain_name,
    j.user_name,
    j.status,
    j.create_time,
    j.status_since,
    epoch($as_of::TIMESTAMPTZ) - epoch(j.status_since) AS stuck_for_s,
    -- Since creation: the most the job can have spent in this status.
    epoch($as_of::TIMESTAMPTZ) - epoch(j.create_time) AS age_s,
    t.threshold_s,
    $as_of::TIMESTAMPTZ AS as_of
FROM drs.async_jobs AS j
JOIN stuck_thresholds AS t ON t.status = j.status
WHERE NOT j.is_gone
  AND epoch($as_of::TIMESTAMPTZ) - epoch(j.status_since) > t.threshold_s
ORDER BY stuck_for_s DESC, j.project_id, j.async_job_id;
