-- The SCD2 merge of a batch of projects' snapshots into the history, run in one
-- transaction by warehouse/merge.py. Set-based: one statement per step for the whole
-- batch, whatever the number of projects and jobs (no per-project or per-job work).
-- Inputs:
--   snapshot        one row per (project_id, async_job_id): the newest observation
--                   of each job seen in this sync (project_id, region, async_job_id,
--                   status, domain_name, user_name, create_time, observed_at), and
--                   snapshot_row, its position (0, 1, 2...) in the batch
--   confirmed_gone  (project_id, async_job_id, gone_at) of jobs the API confirmed
--                   absent (may be empty)
--   merge_projects  (project_id) of every project in the batch
-- Statements are separated by `-- name:` markers. warehouse/merge.py declares
-- their order, and runs each only when the `work` row says it has something to do.

-- name: stage
-- Classify each observation against the current state. An observation no newer
-- than what the history already knows of that job (clocks are not perfect) is
-- stale: applying it would make intervals overlap, so it is left out.
-- job_rowid is where the job's current row is: the updates below find it by that
-- integer rather than by joining on two strings again, which costs more
-- (docs/decisions/0003-merge-design.md). Rows are only appended or updated within
-- the transaction, so a rowid keeps naming the same row.
CREATE OR REPLACE TEMP TABLE merge_stage AS
SELECT
    s.*,
    c.rowid AS job_rowid,
    c.async_job_id IS NULL AS is_new,
    coalesce(c.is_gone, false) AS was_gone,
    c.async_job_id IS NOT NULL
        AND s.observed_at <= greatest(c.last_seen_at, coalesce(c.gone_at, c.last_seen_at))
        AS is_stale,
    c.async_job_id IS NOT NULL
        AND (c.status <> s.status
             OR c.domain_name <> s.domain_name
             OR c.user_name <> s.user_name) AS is_changed,
    c.async_job_id IS NOT NULL
        AND (c.domain_name <> s.domain_name OR c.user_name <> s.user_name) AS owner_changed,
    c.async_job_id IS NOT NULL
        AND (c.region <> s.region OR c.create_time <> s.create_time) AS details_changed
FROM snapshot AS s
LEFT JOIN drs.async_jobs AS c
    ON c.project_id = s.project_id AND c.async_job_id = s.async_job_id;

-- name: work
-- Which kinds of change the batch brings: warehouse/merge.py skips the steps
-- below that have nothing to do.
SELECT
    coalesce(bool_or(NOT is_new AND NOT is_stale), false) AS seen_again,
    coalesce(bool_or(NOT is_stale AND is_changed AND NOT was_gone), false) AS changed,
    coalesce(bool_or(NOT is_stale AND (is_changed OR was_gone)), false) AS changed_or_back,
    coalesce(bool_or(NOT is_stale AND owner_changed), false) AS owner_changed,
    coalesce(bool_or(NOT is_stale AND was_gone), false) AS came_back,
    coalesce(bool_or(NOT is_stale AND details_changed), false) AS details_changed,
    (SELECT count(*) > 0 FROM confirmed_gone) AS gone,
    -- No marts built yet (a new history): the next build makes every job's rows, so
    -- nothing needs noting for it.
    (SELECT count(*) > 0 FROM drs.marts_basis) AS marts_built
FROM merge_stage;

-- name: close_changed_intervals
-- The closed interval keeps its last_seen_at: the last observation before the change.
UPDATE drs.async_job_history AS h
SET valid_to = st.observed_at
FROM merge_stage AS st
WHERE h.project_id = st.project_id
  AND h.async_job_id = st.async_job_id
  AND h.valid_to IS NULL
  AND st.is_changed AND NOT st.is_stale AND NOT st.was_gone;

-- The two inserts take the rows in the snapshot's order (projects one after the
-- other), not in the order the stage's join left them, which inserts faster
-- (docs/decisions/0003-merge-design.md). Sorting on an integer costs little, and
-- only the inserted rows.

-- name: open_intervals
-- New jobs, changed jobs and jobs that came back each start an interval.
INSERT INTO drs.async_job_history
    (project_id, async_job_id, status, domain_name, user_name, valid_from, valid_to,
     last_seen_at)
SELECT project_id, async_job_id, status, domain_name, user_name, observed_at, NULL,
       observed_at
FROM merge_stage
WHERE is_new OR (NOT is_stale AND (is_changed OR was_gone))
ORDER BY snapshot_row;

-- name: insert_new_jobs
INSERT INTO drs.async_jobs
SELECT project_id, region, async_job_id, status, domain_name, user_name, create_time,
       observed_at, observed_at, observed_at, false, NULL
FROM merge_stage
WHERE is_new
ORDER BY snapshot_row;

-- The current rows of jobs seen again, found by rowid. Each statement writes only
-- the column(s) that change, for only the rows where they do: DuckDB keeps an
-- update per row and column, and its checkpoint rewrites every column touched in
-- a row group, so setting nine columns of a changed job to mostly equal values
-- would have each sync rewrite nine columns of nearly the whole table.
-- Taken together, each non-stale job ends exactly as if all its columns had been
-- set from the observation (plus status_since, is_gone and gone_at as below).

-- name: update_seen_jobs
-- Every job seen again: most of a sync. With update_seen_intervals it keeps the
-- job's last_seen_at equal to its open interval's, which is why the pre-commit
-- check can skip the jobs that only get these (merge_checks.sql).
UPDATE drs.async_jobs AS j
SET last_seen_at = st.observed_at
FROM merge_stage AS st
WHERE j.rowid = st.job_rowid
  AND NOT st.is_stale;

-- name: update_seen_intervals
-- The open interval of every job seen again unchanged: its last observation so far,
-- which bounds when the job next changes from below.
UPDATE drs.async_job_history AS h
SET last_seen_at = st.observed_at
FROM merge_stage AS st
WHERE h.project_id = st.project_id
  AND h.async_job_id = st.async_job_id
  AND h.valid_to IS NULL
  AND NOT st.is_new AND NOT st.is_stale AND NOT st.is_changed AND NOT st.was_gone;

-- name: update_changed_status
-- Jobs that changed or came back: a new current interval, starting now.
UPDATE drs.async_jobs AS j
SET status = st.status,
    status_since = st.observed_at
FROM merge_stage AS st
WHERE j.rowid = st.job_rowid
  AND NOT st.is_stale AND (st.is_changed OR st.was_gone);

-- name: update_changed_owner
UPDATE drs.async_jobs AS j
SET domain_name = st.domain_name,
    user_name = st.user_name
FROM merge_stage AS st
WHERE j.rowid = st.job_rowid
  AND NOT st.is_stale AND st.owner_changed;

-- name: update_came_back
UPDATE drs.async_jobs AS j
SET is_gone = false,
    gone_at = NULL
FROM merge_stage AS st
WHERE j.rowid = st.job_rowid
  AND NOT st.is_stale AND st.was_gone;

-- name: update_seen_details
-- When the API reports another region or create_time (rare); read by no invariant.
UPDATE drs.async_jobs AS j
SET region = st.region,
    create_time = st.create_time
FROM merge_stage AS st
WHERE j.rowid = st.job_rowid
  AND NOT st.is_stale AND st.details_changed;

-- name: stage_gone
-- Only jobs the API confirmed absent, that are not gone already, and last seen before
-- the gone time (so valid_from <= last_seen_at < valid_to holds).
-- Always made, even empty: the counts and the check read it, and a temp table left
-- by the previous merge would hold that merge's jobs.
CREATE OR REPLACE TEMP TABLE merge_gone AS
SELECT j.project_id, j.async_job_id, g.gone_at, j.rowid AS job_rowid
FROM drs.async_jobs AS j
JOIN confirmed_gone AS g
    ON g.project_id = j.project_id AND g.async_job_id = j.async_job_id
WHERE NOT j.is_gone
  AND j.status_since < g.gone_at
  AND j.last_seen_at < g.gone_at;

-- name: close_gone_intervals
UPDATE drs.async_job_history AS h
SET valid_to = g.gone_at
FROM merge_gone AS g
WHERE h.project_id = g.project_id
  AND h.async_job_id = g.async_job_id
  AND h.valid_to IS NULL;

-- name: mark_gone
UPDATE drs.async_jobs AS j
SET is_gone = true, gone_at = g.gone_at
FROM merge_gone AS g
WHERE j.rowid = g.job_rowid;

-- name: note_changes_for_marts
-- Every job whose history or clock this merge changed, for the marts to rebuild
-- (warehouse/marts.py): new, changed, back, gone, or its region or create_time
-- corrected. Jobs only seen again are not: what changes for them (last_seen_at)
-- is read by no rebuilt row.
INSERT INTO drs.jobs_changed_since_marts
SELECT project_id, async_job_id
FROM merge_stage
WHERE NOT is_stale AND (is_new OR is_changed OR was_gone OR details_changed)
UNION ALL
SELECT project_id, async_job_id FROM merge_gone;

-- name: note_jobs_reading_runs
-- Run by insert_runs (warehouse/merge.py) after it records run rows: the jobs whose
-- clock a new drs.sync_runs row may change (marts/status_transitions.sql, job_clock
-- reads the project's runs started by a job's first observation, and its ok runs
-- finished before it), that is the project's jobs first seen at or after the row's
-- start or finish, less those this merge added (noted already). With a clock that
-- only moves forward there are none; a clock stepped back (NTP, a resumed VM) makes
-- some.
-- $earliest, the earliest start or finish of those rows, lets DuckDB skip the row
-- groups of jobs first seen before it (first_seen_at grows with the rows).
INSERT INTO drs.jobs_changed_since_marts
SELECT j.project_id, j.async_job_id
FROM drs.async_jobs AS j
JOIN recorded_runs AS r
    ON r.project_id = j.project_id AND j.first_seen_at >= least(r.started_at, r.finished_at)
ANTI JOIN added_by_merge AS a
    ON a.project_id = j.project_id AND a.async_job_id = j.async_job_id
WHERE j.first_seen_at >= $earliest;

-- name: counts
-- One row per project of the batch.
SELECT
    p.project_id,
    coalesce(s.new_jobs, 0) AS new_jobs,
    coalesce(s.changed_jobs, 0) AS changed_jobs,
    coalesce(g.gone_jobs, 0) AS gone_jobs
FROM merge_projects AS p
LEFT JOIN (
    SELECT
        project_id,
        count(*) FILTER (WHERE is_new) AS new_jobs,
        count(*) FILTER (
            WHERE NOT is_new AND NOT is_stale AND (is_changed OR was_gone)
        ) AS changed_jobs
    FROM merge_stage
    GROUP BY project_id
) AS s USING (project_id)
LEFT JOIN (
    SELECT project_id, count(*) AS gone_jobs FROM merge_gone GROUP BY project_id
) AS g USING (project_id);
