-- Jobs present now in each status, per project and owner, then per owner only.
-- Gone jobs are excluded: they are history, not a pile.

-- name: status_counts_by_project
CREATE OR REPLACE TABLE drs.status_counts_by_project AS
SELECT project_id, region, domain_name, user_name, status, count(*) AS jobs
FROM drs.async_jobs
WHERE NOT is_gone
GROUP BY ALL
ORDER BY ALL;

-- name: status_counts
CREATE OR REPLACE TABLE drs.status_counts AS
SELECT domain_name, user_name, status, sum(jobs)::BIGINT AS jobs
FROM drs.status_counts_by_project
GROUP BY ALL
ORDER BY ALL;
