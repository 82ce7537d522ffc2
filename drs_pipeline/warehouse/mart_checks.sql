-- Queries that return the mart rows breaking a promise of the durations; empty
-- means it holds. The Dagster asset checks on the marts run them after each
-- rebuild (warehouse/health.py), and the tests after theirs.

-- name: transitions_out_of_order
-- A change happened after its not_before and no later than its not_after: the two
-- are distinct observations, except on a job's first row, whose create_time may
-- equal its first observation once corrected for the server's clock.
SELECT project_id, async_job_id, from_status, to_status, not_before, not_after
FROM drs.status_transitions
WHERE not_before > not_after OR (from_status IS NOT NULL AND not_before >= not_after)
   OR (from_status IS NOT NULL AND not_before IS NULL)
ORDER BY ALL;

-- name: durations_negative_or_inverted
SELECT project_id, async_job_id, metric, low_s, high_s, seconds
FROM drs.duration_samples
WHERE low_s < 0 OR high_s < low_s OR seconds IS NULL
UNION ALL
SELECT project_id, async_job_id, metric, low_s, NULL, NULL
FROM drs.durations_in_progress
WHERE low_s < 0
ORDER BY ALL;
