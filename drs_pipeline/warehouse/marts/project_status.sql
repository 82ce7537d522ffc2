-- Every project the history knows or the configuration names, and whether what
-- the marts say of it is current: the other marts read it to keep configured
-- projects only and to stamp each row with its project's last ok observation.
-- configured_projects (project_id, region) comes from the settings; $as_of is
-- the build's time and $freshness_s the configuration's freshness_minutes.

-- name: project_status
CREATE OR REPLACE TABLE drs.project_status AS
WITH projects AS (
    SELECT project_id FROM drs.sync_runs
    UNION
    SELECT project_id FROM drs.async_jobs
    UNION
    SELECT project_id FROM configured_projects
),
last_ok AS (
    SELECT project_id, max(finished_at) AS last_ok_sync_at
    FROM drs.sync_runs
    WHERE outcome = 'ok'
    GROUP BY project_id
),
latest AS (
    SELECT project_id, finished_at AS last_sync_at, outcome AS last_outcome
    FROM drs.sync_runs
    QUALIFY row_number() OVER (
        PARTITION BY project_id ORDER BY started_at DESC, finished_at DESC
    ) = 1
),
job_regions AS (
    SELECT project_id, any_value(region) AS region
    FROM drs.async_jobs
    GROUP BY project_id
)
SELECT
    p.project_id,
    coalesce(c.region, j.region) AS region,
    c.project_id IS NOT NULL AS configured,
    o.last_ok_sync_at,
    l.last_sync_at,
    l.last_outcome,
    -- A project never synced ok has nothing current to show.
    coalesce(epoch($as_of::TIMESTAMPTZ) - epoch(o.last_ok_sync_at) > $freshness_s, true) AS stale
FROM projects AS p
LEFT JOIN configured_projects AS c USING (project_id)
LEFT JOIN last_ok AS o USING (project_id)
LEFT JOIN latest AS l USING (project_id)
LEFT JOIN job_regions AS j USING (project_id)
ORDER BY p.project_id;
