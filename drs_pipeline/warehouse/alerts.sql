-- Alerts, raised from the marts after each run (drs_pipeline/alerts, docs/alerts.md).
-- Each alert has a natural key, (kind, project_id, async_job_id, since), whose md5 is
-- its alert_id: an occurrence already in drs.alerts is never raised again, whatever
-- the number of runs in between. $now is the alerts step's time; $freshness_s the
-- configuration's freshness_minutes; alert_routes (webhook, kind) says which
-- webhooks each kind of alert is sent to.

-- name: new_baselines
-- A project is watched from the first alerts step that finds it configured with an
-- ok sync: what was there by then (its first sync's findings, or a whole history
-- upgraded to a version with alerts) raises nothing.
INSERT INTO drs.alert_baselines
SELECT p.project_id, $now::TIMESTAMPTZ
FROM drs.project_status AS p
WHERE p.configured AND p.last_ok_sync_at IS NOT NULL
  AND p.project_id NOT IN (SELECT project_id FROM drs.alert_baselines);

-- name: alert_candidates
-- Every occurrence the history shows in a watched project that began after its
-- baseline, raised or not.
CREATE OR REPLACE TEMP TABLE alert_candidates AS
WITH watched AS (
    SELECT b.project_id, b.baseline_at, coalesce(p.region, '?') AS region
    FROM drs.alert_baselines AS b
    JOIN drs.project_status AS p USING (project_id)
    WHERE p.configured
),
-- A project's syncs in order, and its spells: runs of syncs that were all ok, or
-- all not ok. A failing spell after an ok one is a failure; the ok spell after it,
-- a recovery.
runs AS (
    SELECT
        project_id, sync_id, started_at, finished_at, outcome, error,
        outcome = 'ok' AS ok,
        lag(outcome = 'ok') OVER sync_order AS previous_ok
    FROM drs.sync_runs
    WINDOW sync_order AS (PARTITION BY project_id ORDER BY started_at, finished_at, sync_id)
),
spells AS (
    SELECT
        *,
        sum((ok IS DISTINCT FROM previous_ok)::INTEGER) OVER (
            PARTITION BY project_id ORDER BY started_at, finished_at, sync_id
            ROWS UNBOUNDED PRECEDING
        ) AS spell
    FROM runs
),
spell_starts AS (
    SELECT project_id, spell, ok,
           arg_min(finished_at, started_at) AS began_at,
           arg_min(outcome, started_at) AS outcome,
           arg_min(error, started_at) AS error
    FROM spells
    GROUP BY project_id, spell, ok
),
failures AS (
    -- Spell 1 is the project's first: failing there, it never was ok before.
    SELECT f.project_id, f.began_at AS failed_at, f.outcome, f.error,
           r.began_at AS recovered_at
    FROM spell_starts AS f
    LEFT JOIN spell_starts AS r
        ON r.project_id = f.project_id AND r.spell = f.spell + 1
    WHERE NOT f.ok AND f.spell > 1
)
SELECT
    'validate_failed' AS kind, t.project_id, t.region, t.async_job_id,
    t.domain_name, t.user_name, t.to_status AS status, t.not_after AS since,
    format(
        'job {} of {}/{} in project {} ({}) failed validation: {} since {}',
        t.async_job_id, t.domain_name, t.user_name, t.project_id, coalesce(t.region, '?'),
        t.to_status, strftime(t.not_after, '%Y-%m-%d %H:%M:%S UTC')
    ) AS message
FROM drs.status_transitions AS t
JOIN watched AS w USING (project_id)
WHERE t.to_status = 'ASYNC_JOB_VALIDATE_FAILED' AND t.not_after > w.baseline_at
UNION ALL
SELECT
    'stuck', s.project_id, s.region, s.async_job_id, s.domain_name, s.user_name, s.status,
    s.status_since,
    format(
        'job {} of {}/{} in project {} ({}) is stuck: {} for {:.0f} min (threshold {:g} min), '
        || 'since {}',
        s.async_job_id, s.domain_name, s.user_name, s.project_id, coalesce(s.region, '?'),
        s.status, s.stuck_for_s / 60, s.threshold_s / 60,
        strftime(s.status_since, '%Y-%m-%d %H:%M:%S UTC')
    )
FROM drs.stuck_jobs AS s
JOIN watched AS w USING (project_id)
WHERE s.status_since > w.baseline_at
UNION ALL
SELECT
    'project_failed', f.project_id, w.region, NULL, NULL, NULL, f.outcome, f.failed_at,
    format(
        'project {} ({}) sync {} at {}: {}',
        f.project_id, w.region, f.outcome, strftime(f.failed_at, '%Y-%m-%d %H:%M:%S UTC'),
        CASE
            WHEN length(coalesce(f.error, '')) <= 300 THEN coalesce(f.error, '(no error recorded)')
            ELSE left(f.error, 297) || '...'
        END
    )
FROM failures AS f
JOIN watched AS w USING (project_id)
WHERE f.failed_at > w.baseline_at
UNION ALL
SELECT
    'project_recovered', f.project_id, w.region, NULL, NULL, NULL, 'ok', f.recovered_at,
    format(
        'project {} ({}) synced ok again at {}, after failing since {}',
        f.project_id, w.region, strftime(f.recovered_at, '%Y-%m-%d %H:%M:%S UTC'),
        strftime(f.failed_at, '%Y-%m-%d %H:%M:%S UTC')
    )
FROM failures AS f
JOIN watched AS w USING (project_id)
-- Paired with its failure: a spell that began before the baseline raises neither.
WHERE f.recovered_at IS NOT NULL AND f.failed_at > w.baseline_at
UNION ALL
-- A stale spell lasts until the next ok sync: it is keyed on the last one, and it
-- began (freshness_minutes after it) after the baseline.
SELECT
    'stale', p.project_id, w.region, NULL, NULL, NULL, NULL, p.last_ok_sync_at,
    format(
        'project {} ({}) is stale: no ok sync since {} (freshness_minutes {:g})',
        p.project_id, w.region, strftime(p.last_ok_sync_at, '%Y-%m-%d %H:%M:%S UTC'),
        $freshness_s / 60
    )
FROM drs.project_status AS p
JOIN watched AS w USING (project_id)
WHERE p.stale AND p.last_ok_sync_at IS NOT NULL
  AND epoch(p.last_ok_sync_at) + $freshness_s > epoch(w.baseline_at);

-- name: raised
-- The candidates not raised before: this step's new alerts.
CREATE OR REPLACE TEMP TABLE raised AS
WITH keyed AS (
    SELECT
        md5(concat_ws(
            '|', kind, project_id, coalesce(async_job_id, ''), epoch_us(since)::VARCHAR
        )) AS alert_id,
        *
    FROM alert_candidates
)
SELECT
    k.alert_id, k.kind, k.project_id, k.region, k.async_job_id, k.domain_name, k.user_name,
    k.status, k.since, k.message, $now::TIMESTAMPTZ AS raised_at
FROM keyed AS k
WHERE k.alert_id NOT IN (SELECT alert_id FROM drs.alerts)
QUALIFY row_number() OVER (PARTITION BY k.alert_id ORDER BY k.message) = 1;

-- name: insert_raised
INSERT INTO drs.alerts SELECT * FROM raised;

-- name: queue_deliveries
-- Each new alert, to each webhook its kind is sent to.
INSERT INTO drs.alert_deliveries
SELECT r.alert_id, routes.webhook, 0, NULL, NULL, NULL
FROM raised AS r
JOIN alert_routes AS routes USING (kind);

-- name: pending
-- What a webhook has not accepted yet, oldest first.
SELECT a.alert_id, a.kind, a.project_id, a.region, a.async_job_id, a.domain_name,
       a.user_name, a.status, a.since, a.message
FROM drs.alert_deliveries AS d
JOIN drs.alerts AS a USING (alert_id)
WHERE d.webhook = $webhook AND d.delivered_at IS NULL
ORDER BY a.raised_at, a.since, a.kind, a.project_id, a.async_job_id;

-- name: record_delivered
UPDATE drs.alert_deliveries AS d
SET attempts = d.attempts + 1, last_attempt_at = $at, delivered_at = $at, last_error = NULL
FROM sent
WHERE d.webhook = $webhook AND d.alert_id = sent.alert_id AND d.delivered_at IS NULL;

-- name: record_failed
UPDATE drs.alert_deliveries AS d
SET attempts = d.attempts + 1, last_attempt_at = $at, last_error = $error
FROM sent
WHERE d.webhook = $webhook AND d.alert_id = sent.alert_id AND d.delivered_at IS NULL;

-- name: pending_counts
-- Alerts each webhook has not accepted yet (a webhook no longer configured included).
SELECT webhook, count(*) AS pending
FROM drs.alert_deliveries
WHERE delivered_at IS NULL
GROUP BY webhook
ORDER BY webhook;
