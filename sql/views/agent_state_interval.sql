-- agent_state_interval: one row per agent per continuous chat state, reconstructed from successive snapshots,
-- plus one row (observed = FALSE, chat_state NULL) per span the snapshots did not see.
-- Rules and their reasons: docs/reporting.md. Written once in PostgreSQL syntax; pipelines/reporting/views.py
-- expands the macros EPOCH_US(ts) (integer microseconds since 1970) and transpiles per dialect with sqlglot.
WITH snap AS (
    SELECT
        s.agent_id,
        s.snapshot_at,
        COALESCE(s.state_started_at, s.snapshot_at) AS state_started_at,
        s.chat_state_code,
        COALESCE(s.chat_state, 'unknown') AS chat_state,
        s.agent_group_id,
        COALESCE(s.elapsed_in_state_ms, 0) > 0 AS tracked,
        EPOCH_US(s.snapshot_at) AS at_us,
        EPOCH_US(COALESCE(s.state_started_at, s.snapshot_at)) AS reported_st_us,
        COALESCE(r.interval_s, 60) AS interval_s
    FROM agent_state_snapshot AS s
    LEFT JOIN snapshot_run AS r ON r.snapshot_id = s.snapshot_id
    WHERE r.status IS NULL OR r.status <> 'failed'
),

clamped AS (
    -- a start after its own snapshot (negative elapsed) is taken as the snapshot time
    SELECT snap.*, CASE WHEN reported_st_us > at_us THEN at_us ELSE reported_st_us END AS st_us
    FROM snap
),

seq AS (
    SELECT
        clamped.*,
        ROW_NUMBER() OVER w AS rn,
        LAG(chat_state) OVER w AS prev_state,
        LAG(snapshot_at) OVER w AS prev_snapshot_at,
        LAG(at_us) OVER w AS prev_at_us,
        LAG(st_us) OVER w AS prev_st_us,
        LAG(interval_s) OVER w AS prev_interval_s,
        MAX(snapshot_at) OVER (PARTITION BY agent_id) AS last_snapshot_at,
        MAX(at_us) OVER (PARTITION BY agent_id) AS last_at_us
    FROM clamped
    WINDOW w AS (PARTITION BY agent_id ORDER BY snapshot_at)
),

marked AS (
    SELECT
        seq.*,
        CASE
            WHEN prev_at_us IS NULL THEN 0
            WHEN at_us - prev_at_us > 2000000 * prev_interval_s THEN 1
            ELSE 0
        END AS gap_before,
        CASE
            WHEN prev_at_us IS NULL THEN 1
            WHEN chat_state <> prev_state THEN 1
            -- after a gap the same state continues only if its start proves it began before the gap
            WHEN at_us - prev_at_us > 2000000 * prev_interval_s
                THEN CASE WHEN tracked AND st_us <= prev_at_us + 2000000 THEN 0 ELSE 1 END
            -- elapsed 0 means "not tracked": the same state continues
            WHEN NOT tracked THEN 0
            -- a start more than 2 s later than the previous one: left and came back between snapshots
            WHEN st_us - prev_st_us > 2000000 THEN 1
            ELSE 0
        END AS is_new,
        -- a change is placed at its state_started_at, never before the snapshot that still saw the old state
        CASE WHEN prev_at_us IS NULL OR st_us >= prev_at_us THEN st_us ELSE prev_at_us END AS start_us,
        CASE
            WHEN prev_at_us IS NULL OR st_us >= prev_at_us THEN state_started_at
            ELSE prev_snapshot_at
        END AS start_at
    FROM seq
),

segments AS (
    SELECT
        agent_id, 2 * rn AS ord, chat_state_code, chat_state, agent_group_id,
        start_at AS started_at, start_us AS started_at_us, TRUE AS observed, last_snapshot_at, last_at_us
    FROM marked
    WHERE is_new = 1
    UNION ALL
    SELECT
        agent_id, 2 * rn - 1 AS ord, NULL AS chat_state_code, NULL AS chat_state, agent_group_id,
        prev_snapshot_at AS started_at, prev_at_us AS started_at_us, FALSE AS observed, last_snapshot_at, last_at_us
    FROM marked
    WHERE is_new = 1 AND gap_before = 1 AND start_us > prev_at_us
    UNION ALL
    -- a flap no snapshot saw: Online/Occupied left and re-entered between two snapshots. The excursion is counted
    -- as Away (the documented cause of sub-minute changes: an unaccepted chat) for the second half of the window
    -- in which it must have begun, its expected length (docs/reporting.md).
    SELECT
        agent_id, 2 * rn - 1 AS ord, 4 AS chat_state_code, 'Away' AS chat_state, agent_group_id,
        TS_FROM_US(IDIV(prev_at_us + start_us, 2)) AS started_at, IDIV(prev_at_us + start_us, 2) AS started_at_us,
        TRUE AS observed, last_snapshot_at, last_at_us
    FROM marked
    WHERE is_new = 1 AND gap_before = 0 AND chat_state = prev_state AND chat_state_code IN (2, 3)
        AND start_us > prev_at_us
),

bounded AS (
    SELECT
        agent_id, chat_state_code, chat_state, agent_group_id, observed, started_at, started_at_us,
        COALESCE(LEAD(started_at) OVER w, last_snapshot_at) AS ended_at,
        COALESCE(LEAD(started_at_us) OVER w, last_at_us) AS ended_at_us
    FROM segments
    WINDOW w AS (PARTITION BY agent_id ORDER BY ord)
)

SELECT
    agent_id,
    chat_state_code,
    chat_state,
    agent_group_id,
    started_at,
    ended_at,
    CAST(ended_at_us - started_at_us AS DOUBLE PRECISION) / CAST(1000000 AS DOUBLE PRECISION) AS seconds,
    observed,
    started_at_us,
    ended_at_us
FROM bounded
