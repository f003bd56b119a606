-- agent_time_in_state_daily: seconds per UTC day, agent and chat state, summed from the hourly split.
-- Rows with observed = FALSE (chat_state NULL) carry the day's unobserved seconds, so that per agent-day the
-- state seconds plus the unobserved seconds add up to the covered part of the day (docs/reporting.md).
-- share_of_observed_day: the state's part of the agent's observed seconds that day (NULL on unobserved rows).
WITH daily AS (
    SELECT day, agent_id, chat_state_code, chat_state, observed, CAST(SUM(duration_us) AS BIGINT) AS duration_us
    FROM agent_time_in_state_hourly
    GROUP BY day, agent_id, chat_state_code, chat_state, observed
),

totals AS (
    SELECT
        daily.*,
        SUM(CASE WHEN observed THEN duration_us ELSE 0 END) OVER (PARTITION BY day, agent_id) AS observed_us
    FROM daily
)

SELECT
    day,
    agent_id,
    chat_state_code,
    chat_state,
    observed,
    CAST(duration_us AS DOUBLE PRECISION) / CAST(1000000 AS DOUBLE PRECISION) AS seconds,
    CASE
        WHEN observed AND observed_us > 0
            THEN CAST(duration_us AS DOUBLE PRECISION) / CAST(observed_us AS DOUBLE PRECISION)
    END AS share_of_observed_day,
    duration_us
FROM totals
