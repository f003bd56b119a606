-- agent_time_in_state_hourly: agent_state_interval split at every UTC hour boundary (day, hour 0-23).
-- Unobserved spans come through as rows with observed = FALSE and chat_state NULL. duration_us is the exact
-- integer sum; seconds = duration_us / 1e6. Macros EPOCH_US / IDIV / DAY_DATE: see pipelines/reporting/views.py.
WITH RECURSIVE pieces (agent_id, chat_state_code, chat_state, observed, piece_start_us, ended_at_us) AS (
    SELECT agent_id, chat_state_code, chat_state, observed, started_at_us, ended_at_us
    FROM agent_state_interval
    WHERE ended_at_us > started_at_us
    UNION ALL
    SELECT
        agent_id, chat_state_code, chat_state, observed,
        (IDIV(piece_start_us, 3600000000) + 1) * 3600000000, ended_at_us
    FROM pieces
    WHERE (IDIV(piece_start_us, 3600000000) + 1) * 3600000000 < ended_at_us
),

hours AS (
    SELECT
        agent_id, chat_state_code, chat_state, observed, piece_start_us, ended_at_us,
        IDIV(piece_start_us, 3600000000) AS hour_n,
        (IDIV(piece_start_us, 3600000000) + 1) * 3600000000 AS hour_end_us
    FROM pieces
),

clipped AS (
    SELECT
        agent_id, chat_state_code, chat_state, observed, hour_n,
        CASE WHEN ended_at_us < hour_end_us THEN ended_at_us ELSE hour_end_us END - piece_start_us AS piece_us
    FROM hours
),

summed AS (
    SELECT agent_id, chat_state_code, chat_state, observed, hour_n, CAST(SUM(piece_us) AS BIGINT) AS duration_us
    FROM clipped
    GROUP BY agent_id, chat_state_code, chat_state, observed, hour_n
)

SELECT
    DAY_DATE(IDIV(hour_n, 24)) AS day,
    CAST(hour_n - 24 * IDIV(hour_n, 24) AS INTEGER) AS hour,
    agent_id,
    chat_state_code,
    chat_state,
    observed,
    CAST(duration_us AS DOUBLE PRECISION) / CAST(1000000 AS DOUBLE PRECISION) AS seconds,
    duration_us
FROM summed
