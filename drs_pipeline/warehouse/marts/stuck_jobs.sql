-- Jobs present now, in a configured project, that have stayed in a status longer
-- than its threshold (stuck_thresholds: status, threshold_s; from the configuration).
-- Both ends are observations: stuck_for_s runs from the first observation of the
-- current stay (drs.job_steps: an owner change does not restart it) to the job's last
-- observation, a lower bound that stops growing when nobody looks. age_s runs from
-- create_time on our clock (drs.job_clock). as_of and stale are the project's
-- (drs.project_status).

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
    s.first_seen_in AS status_since,
    epoch(j.last_seen_at) - epoch(s.first_seen_in) AS stuck_for_s,
    -- Since creation: the most the job can have spent in this status when last seen.
    epoch(j.last_seen_at) - epoch(s.created_at) AS age_s,
    t.threshold_s,
    p.last_ok_sync_at AS as_of,
    p.stale
FROM drs.async_jobs AS j
JOIN drs.job_steps AS s
    ON s.project_id = j.project_id AND s.async_job_id = j.async_job_id AND s.ended_by IS NULL
JOIN drs.project_status AS p ON p.project_id = j.project_id
JOIN stuck_thresholds AS t ON t.status = j.status
WHERE NOT j.is_gone
  AND p.configured
  AND epoch(j.last_seen_at) - epoch(s.first_seen_in) > t.threshold_s
ORDER BY stuck_for_s DESC, j.project_id, j.async_job_id;
