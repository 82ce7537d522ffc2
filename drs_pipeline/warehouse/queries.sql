-- What the command line, the report and the asset checks read, by name
-- (warehouse/queries.py). Parameters are named: $sync_id.

-- name: jobs_by_status
-- Jobs present now, by tenant, user and status (the ingest's preview).
SELECT domain_name, user_name, status, count(*) AS jobs
FROM drs.async_jobs
WHERE NOT is_gone
GROUP BY ALL
ORDER BY domain_name, user_name, status;

-- name: jobs_by_project_and_status
-- jobs_by_status per project (the preview of each partition of the ingest).
SELECT project_id, domain_name, user_name, status, count(*) AS jobs
FROM drs.async_jobs
WHERE NOT is_gone
GROUP BY ALL
ORDER BY project_id, domain_name, user_name, status;

-- name: sync_runs_of_sync
-- One sync's projects, as the command line prints them.
SELECT project_id, outcome, pages, jobs_seen AS jobs, new_jobs AS new,
       changed_jobs AS changed, gone_jobs AS gone, rejected_records AS rejected,
       coalesce(error, '') AS error
FROM drs.sync_runs
WHERE sync_id = $sync_id
ORDER BY project_id;

-- name: stuck_jobs_in_hours
-- The stuck jobs, longest first (the check on drs.stuck_jobs).
SELECT project_id, async_job_id, domain_name, user_name, status,
       round(stuck_for_s / 3600, 1) AS stuck_hours, round(threshold_s / 3600, 1) AS threshold_hours
FROM drs.stuck_jobs
ORDER BY stuck_for_s DESC;

-- name: demo_status_counts
FROM drs.status_counts;

-- name: demo_durations
-- The durations the demo shows: validation and time to commit.
FROM drs.job_durations
WHERE metric IN ('validation', 'time_to_commit')
ORDER BY metric, domain_name, user_name;

-- name: demo_stuck_jobs
SELECT count(*) AS stuck_jobs FROM drs.stuck_jobs;

-- name: latest_sync_runs
-- The rows of the most recent sync (one writer at a time: that is this run's).
SELECT * FROM drs.sync_runs
WHERE sync_id = (SELECT arg_max(sync_id, started_at) FROM drs.sync_runs)
ORDER BY project_id;

-- name: rejected_in_sync
-- One sync's rejected records (the check on drs.rejected_records).
SELECT project_id, reason, record FROM drs.rejected_records
WHERE sync_id = $sync_id
ORDER BY project_id, reason;

-- name: last_ok_sync_per_project
-- When each project's latest ok sync finished (the freshness check).
SELECT project_id, max(finished_at) AS finished_at
FROM drs.sync_runs
WHERE outcome = 'ok'
GROUP BY project_id;

-- name: watched_jobs
-- The watch's look-ups: the configured projects' jobs present in a watched status,
-- per project the longest unobserved first (drs_pipeline/watch.py).
SELECT project_id, async_job_id
FROM drs.async_jobs
WHERE NOT is_gone
  AND list_contains($statuses, status)
  AND list_contains($project_ids, project_id)
ORDER BY project_id, last_seen_at, async_job_id;

-- name: watched_job_count
-- Whether the watch has anything to watch, read by its sensor from the published
-- copy: the jobs of watched_jobs, but for projects whose latest sync failed (a round
-- would fail on them too, every few seconds, until a sync succeeds), and when the
-- copy was published.
SELECT
    (SELECT count(*) FROM drs.async_jobs
     WHERE NOT is_gone
       AND list_contains($statuses, status)
       AND list_contains($project_ids, project_id)
       AND project_id NOT IN (
           SELECT project_id FROM (
               SELECT project_id, arg_max(outcome, started_at) AS outcome
               FROM drs.sync_runs GROUP BY project_id
           ) WHERE outcome = 'failed'
       )) AS jobs,
    (SELECT max(published_at) FROM drs.publication) AS published_at;
