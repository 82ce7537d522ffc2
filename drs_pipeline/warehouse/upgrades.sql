-- Upgrades of a history written by an earlier version, run by warehouse/store.py
-- (ensure_schema) when the database it opens lacks what they add.

-- name: history_last_seen_at
-- drs.async_job_history.last_seen_at, in one transaction with its values. An open
-- interval's last observation is its job's. A closed interval's was not kept; its
-- valid_from is the latest observation known to lie within it: a looser, still
-- true, lower bound of when it ended.
ALTER TABLE drs.async_job_history ADD COLUMN IF NOT EXISTS last_seen_at TIMESTAMPTZ;
UPDATE drs.async_job_history
SET last_seen_at = valid_from
WHERE last_seen_at IS NULL AND valid_to IS NOT NULL;
UPDATE drs.async_job_history AS h
SET last_seen_at = j.last_seen_at
FROM drs.async_jobs AS j
WHERE h.project_id = j.project_id AND h.async_job_id = j.async_job_id
  AND h.last_seen_at IS NULL AND h.valid_to IS NULL;

-- name: history_last_seen_at_not_null
-- After the values are committed: DuckDB refuses the constraint in the transaction
-- that wrote them.
ALTER TABLE drs.async_job_history ALTER COLUMN last_seen_at SET NOT NULL;
