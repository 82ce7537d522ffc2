-- Jobs present now in each status, per project and owner, then per owner only.
-- Gone jobs are excluded: they are history, not a pile. So are projects no
-- longer configured: nobody looks at them, so their jobs are not "now".
-- "Now" is as_of, the project's last ok sync, and a stale project's rows say so.

-- name: status_counts_by_project
CREATE OR REPLACE TABLE drs.status_counts_by_project AS
SELECT
    j.project_id,
    j.region,
    j.domain_name,
    j.user_name,
    j.status,
    count(*) AS jobs,
    p.last_ok_sync_at AS as_of,
    p.stale
FROM drs.async_jobs AS j
JOIN drs.project_status AS p USING (project_id)
WHERE NOT j.is_gone AND p.configured
GROUP BY ALL
ORDER BY ALL;

-- name: status_counts
CREATE OR REPLACE TABLE drs.status_counts AS
SELECT
    domain_name,
    user_name,
    status,
    sum(jobs)::BIGINT AS jobs,
    -- The oldest of the row's projects; unknown if one of them never synced ok.
    CASE WHEN bool_and(as_of IS NOT NULL) THEN min(as_of) END AS as_of,
    bool_or(stale) AS stale
FROM drs.status_counts_by_project
GROUP BY domain_name, user_name, status
ORDER BY ALL;
