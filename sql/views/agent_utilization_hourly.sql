-- agent_utilization_hourly: per UTC hour and agent, from the snapshots taken in that hour (snapshot-averaged:
-- every successful snapshot stands for one schedule interval). Only snapshots in chat state 2 Online or
-- 3 Occupied with a known `chats` count; utilization also needs max_chats > 0 (-1 = unlimited, 0 = none).
-- The *_sum and *_snapshots columns are exact integers so that days sum from hours without rounding.
-- chats_handled: chats a monitored agent's session collected (chat_session.monitored_by) that started in the
-- hour; NULL for agents that are not monitored. Macros EPOCH_US / IDIV / DAY_DATE: see views.py.
WITH snap AS (
    SELECT
        s.agent_id,
        IDIV(EPOCH_US(s.snapshot_at), 3600000000) AS hour_n,
        s.max_chats,
        CASE WHEN s.chat_state_code IN (2, 3) AND s.chats IS NOT NULL THEN 1 ELSE 0 END AS active,
        CASE WHEN s.chat_state_code IN (2, 3) AND s.chats IS NOT NULL AND s.max_chats > 0 THEN 1 ELSE 0 END AS capped,
        s.chats
    FROM agent_state_snapshot AS s
    LEFT JOIN snapshot_run AS r ON r.snapshot_id = s.snapshot_id
    WHERE r.status IS NULL OR r.status <> 'failed'
),

by_hour AS (
    SELECT
        agent_id,
        hour_n,
        CAST(COUNT(*) AS BIGINT) AS snapshots,
        CAST(SUM(active) AS BIGINT) AS active_snapshots,
        CAST(SUM(CASE WHEN active = 1 THEN chats ELSE 0 END) AS BIGINT) AS active_chats_sum,
        CAST(SUM(CASE WHEN capped = 1 THEN chats ELSE 0 END) AS BIGINT) AS capped_chats_sum,
        CAST(SUM(CASE WHEN capped = 1 THEN max_chats ELSE 0 END) AS BIGINT) AS capacity_sum,
        MAX(max_chats) AS max_chats
    FROM snap
    GROUP BY agent_id, hour_n
),

handled AS (
    SELECT monitored_by AS agent_id, IDIV(EPOCH_US(start_time), 3600000000) AS hour_n, CAST(COUNT(*) AS BIGINT) AS chats
    FROM chat_session
    WHERE start_time IS NOT NULL AND monitored_by IS NOT NULL
    GROUP BY monitored_by, IDIV(EPOCH_US(start_time), 3600000000)
),

agent_hours AS (
    -- an hour with chats but no snapshot of the agent (an outage) still counts its chats
    SELECT agent_id, hour_n FROM by_hour
    UNION
    SELECT agent_id, hour_n FROM handled
)

SELECT
    DAY_DATE(IDIV(k.hour_n, 24)) AS day,
    CAST(k.hour_n - 24 * IDIV(k.hour_n, 24) AS INTEGER) AS hour,
    k.agent_id,
    CASE
        WHEN b.active_snapshots > 0
            THEN CAST(b.active_chats_sum AS DOUBLE PRECISION) / CAST(b.active_snapshots AS DOUBLE PRECISION)
    END AS avg_active_chats,
    b.max_chats,
    CASE
        WHEN b.capacity_sum > 0
            THEN CAST(b.capped_chats_sum AS DOUBLE PRECISION) / CAST(b.capacity_sum AS DOUBLE PRECISION)
    END AS utilization,
    CASE WHEN a.monitored THEN COALESCE(h.chats, 0) END AS chats_handled,
    COALESCE(b.snapshots, 0) AS snapshots,
    COALESCE(b.active_snapshots, 0) AS active_snapshots,
    COALESCE(b.active_chats_sum, 0) AS active_chats_sum,
    COALESCE(b.capped_chats_sum, 0) AS capped_chats_sum,
    COALESCE(b.capacity_sum, 0) AS capacity_sum
FROM agent_hours AS k
LEFT JOIN by_hour AS b ON b.agent_id = k.agent_id AND b.hour_n = k.hour_n
LEFT JOIN handled AS h ON h.agent_id = k.agent_id AND h.hour_n = k.hour_n
LEFT JOIN agent AS a ON a.agent_id = k.agent_id
