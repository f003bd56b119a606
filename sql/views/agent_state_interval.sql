-- agent_state_interval: one row per agent per continuous chat state, reconstructed from successive snapshots,
-- plus one row (observed = FALSE, chat_state NULL) per span the snapshots did not see.
-- Rules and their reasons: docs/reporting.md. Written once in PostgreSQL syntax; pipelines/reporting/views.py
-- expands the macros EPOCH_US(ts) (integer microseconds since 1970) and transpiles per dialect with sqlglot.
WITH seq AS NOT MATERIALIZED (
    -- One window, read straight from the table (no CTE in between): SQLite then reads the day through the
    -- covering index (agent_id, snapshot_at, ...) in the window's order without sorting (given ANALYZE
    -- statistics; docs/reporting.md), and DuckDB sorts once. Only
    -- integers and the few columns an interval keeps go through it: times as epoch microseconds, turned back
    -- into timestamps at the end on the few rows that remain. LEAD only marks the agent's last snapshot.
    SELECT
        s.agent_id,
        s.chat_state_code,
        COALESCE(s.chat_state, 'unknown') AS chat_state,
        s.agent_group_id,
        COALESCE(s.elapsed_in_state_ms, 0) > 0 AS tracked,
        EPOCH_US(s.snapshot_at) AS at_us,
        EPOCH_US(COALESCE(s.state_started_at, s.snapshot_at)) AS reported_st_us,
        COALESCE(r.interval_s, 60) AS interval_s,
        ROW_NUMBER() OVER w AS rn,
        LAG(COALESCE(s.chat_state, 'unknown')) OVER w AS prev_state,
        LAG(EPOCH_US(s.snapshot_at)) OVER w AS prev_at_us,
        LAG(EPOCH_US(COALESCE(s.state_started_at, s.snapshot_at))) OVER w AS prev_reported_st_us,
        LAG(COALESCE(r.interval_s, 60)) OVER w AS prev_interval_s,
        LEAD(s.snapshot_at) OVER w AS next_snapshot_at
    FROM agent_state_snapshot AS s
    LEFT JOIN snapshot_run AS r ON r.snapshot_id = s.snapshot_id
    WHERE r.status IS NULL OR r.status <> 'failed'
    WINDOW w AS (PARTITION BY s.agent_id ORDER BY s.snapshot_at)
),

clamped AS NOT MATERIALIZED (
    -- a start after its own snapshot (negative elapsed) is taken as the snapshot time
    SELECT
        seq.*,
        CASE WHEN reported_st_us > at_us THEN at_us ELSE reported_st_us END AS st_us,
        CASE WHEN prev_reported_st_us > prev_at_us THEN prev_at_us ELSE prev_reported_st_us END AS prev_st_us
    FROM seq
),

marked AS MATERIALIZED (
    -- only the snapshots that start something (or end the agent's history) leave this step
    SELECT
        flagged.*,
        CASE
            WHEN prev_at_us IS NULL THEN 0
            WHEN at_us - prev_at_us > 2000000 * prev_interval_s THEN 1
            ELSE 0
        END AS gap_before,
        -- a change is placed at its state_started_at, never before the snapshot that still saw the old state
        CASE WHEN prev_at_us IS NULL OR st_us >= prev_at_us THEN st_us ELSE prev_at_us END AS start_us,
        -- the timestamp shown: the reported start itself (even after its snapshot), or the previous snapshot
        CASE WHEN prev_at_us IS NULL OR st_us >= prev_at_us THEN reported_st_us ELSE prev_at_us END AS start_ts_us
    FROM (
        SELECT
            clamped.*,
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
            END AS is_new
        FROM clamped
    ) AS flagged
    WHERE is_new = 1 OR next_snapshot_at IS NULL
),

segments AS (
    SELECT
        agent_id, 2 * rn AS ord, chat_state_code, chat_state, agent_group_id,
        start_ts_us AS started_ts_us, start_us AS started_at_us, TRUE AS observed
    FROM marked
    WHERE is_new = 1
    UNION ALL
    SELECT
        agent_id, 2 * rn - 1 AS ord, NULL AS chat_state_code, NULL AS chat_state, agent_group_id,
        prev_at_us AS started_ts_us, prev_at_us AS started_at_us, FALSE AS observed
    FROM marked
    WHERE is_new = 1 AND gap_before = 1 AND start_us > prev_at_us
    UNION ALL
    -- a flap no snapshot saw: Online/Occupied left and re-entered between two snapshots. The excursion is counted
    -- as Away (the documented cause of sub-minute changes: an unaccepted chat) for the second half of the window
    -- in which it must have begun, its expected length (docs/reporting.md).
    SELECT
        agent_id, 2 * rn - 1 AS ord, 4 AS chat_state_code, 'Away' AS chat_state, agent_group_id,
        IDIV(prev_at_us + start_us, 2) AS started_ts_us, IDIV(prev_at_us + start_us, 2) AS started_at_us,
        TRUE AS observed
    FROM marked
    WHERE is_new = 1 AND gap_before = 0 AND chat_state = prev_state AND chat_state_code IN (2, 3)
        AND start_us > prev_at_us
    UNION ALL
    -- the end of the agent's history (its last snapshot): not a row of its own, it ends the last interval
    SELECT
        agent_id, 2 * rn + 1 AS ord, NULL AS chat_state_code, NULL AS chat_state, NULL AS agent_group_id,
        at_us AS started_ts_us, at_us AS started_at_us, NULL AS observed
    FROM marked
    WHERE next_snapshot_at IS NULL
),

bounded AS (
    SELECT
        agent_id, chat_state_code, chat_state, agent_group_id, observed, started_ts_us, started_at_us,
        LEAD(started_ts_us) OVER w AS ended_ts_us,
        LEAD(started_at_us) OVER w AS ended_at_us
    FROM segments
    WINDOW w AS (PARTITION BY agent_id ORDER BY ord)
)

SELECT
    agent_id,
    chat_state_code,
    chat_state,
    agent_group_id,
    TS_FROM_US(started_ts_us) AS started_at,
    TS_FROM_US(ended_ts_us) AS ended_at,
    CAST(ended_at_us - started_at_us AS DOUBLE PRECISION) / CAST(1000000 AS DOUBLE PRECISION) AS seconds,
    observed,
    started_at_us,
    ended_at_us
FROM bounded
WHERE observed IS NOT NULL
