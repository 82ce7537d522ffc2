-- Jobs present now, in a configured project, that have stayed in a status longer
-- than its threshold (stuck_thresholds: status, threshold_s; from the configuration).
-- Both ends are observations: stuck_for_s runs from the first observation of the
-- status to the job's last one, a lower bound that stops growing when nobody looks.
-- as_of and stale are the project's (drs.project_status).

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
    epoch(j.last_seen_at) - epoch(j.status_since) AS stuck_for_s,
    -- Since creation: the most the job can have spent in this status when last seen.
    epoch(j.last_seen_at) - epoch(j.create_time) AS age_s,
    t.threshold_s,
    p.last_ok_sync_at AS as_of,
    p.stale
FROM drs.async_jobs AS j
JOIN drs.project_status AS p USING (project_id)
JOIN stuck_thresholds AS t ON t.status = j.status
WHERE NOT j.is_gone
  AND p.configured
  AND epoch(j.last_seen_at) - epoch(j.status_since) > t.threshold_s
ORDER BY stuck_for_s DESC, j.project_id, j.async_job_id;
