-- The merge's own check, run in its transaction before it commits (warehouse/merge.py):
-- the history's invariants (checks.sql) for the jobs this merge wrote, not for the
-- whole history, so that it costs what the merge changed, not what the history holds.
--
-- Why that is enough, given that the invariants held when the previous merge
-- committed (this check) and after every run (the asset checks):
--   * jobs seen again unchanged get only last_seen_at, on their row and their open
--     interval alike, set to an observation newer than the one both held (merge.sql,
--     update_seen_jobs and update_seen_intervals), which keeps it equal on both and
--     within the open interval; and region and create_time, which no invariant reads
--     (update_seen_details). Stale observations are not applied at all;
--   * jobs that changed, came back or went are checked in full, below: their rows
--     are copied out once (merge_touched_jobs, merge_touched_history) and
--     checks.sql runs over the copies (check_copies);
--   * a new job had no row in either table (no job row, or it would not be new; no
--     history row, or history_of_unknown_jobs would have failed), and gets one job
--     row and one open interval copied from the same merge_stage row: its
--     invariants hold unless its key came twice (new_job_twice).
--
-- When no job was touched (Work.touched in warehouse/merge.py), the copies and
-- checks.sql are skipped together: copies left by a previous merge would
-- otherwise be checked again.

-- name: touched
CREATE OR REPLACE TEMP TABLE merge_touched AS
SELECT project_id, async_job_id, job_rowid FROM merge_stage
WHERE NOT is_new AND NOT is_stale AND (is_changed OR was_gone)
UNION
SELECT project_id, async_job_id, job_rowid FROM merge_gone;

-- name: touched_jobs
-- By rowid (see merge.sql's stage): cheaper than joining on the two strings again.
CREATE OR REPLACE TEMP TABLE merge_touched_jobs AS
SELECT * FROM drs.async_jobs WHERE rowid IN (SELECT job_rowid FROM merge_touched);

-- name: touched_history
CREATE OR REPLACE TEMP TABLE merge_touched_history AS
SELECT * FROM drs.async_job_history SEMI JOIN merge_touched USING (project_id, async_job_id);

-- name: check_copies
-- The tables checks.sql reads.
CREATE OR REPLACE TEMP VIEW checked_jobs AS FROM merge_touched_jobs;
CREATE OR REPLACE TEMP VIEW checked_history AS FROM merge_touched_history;

-- name: new_job_twice
SELECT project_id, async_job_id, count(*) AS copies
FROM merge_stage
WHERE is_new
GROUP BY ALL
HAVING count(*) > 1
ORDER BY ALL;
