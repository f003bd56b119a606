-- chat_capacity_snapshot: per snapshot, the account's available chat slots (-1 = unlimited) beside the chats
-- that monitored agents are in and how many of them are in state 2 Online or 3 Occupied.
WITH monitored AS (
    SELECT
        s.snapshot_id,
        CAST(SUM(s.chats) AS BIGINT) AS monitored_active_chats,
        CAST(SUM(CASE WHEN s.chat_state_code IN (2, 3) THEN 1 ELSE 0 END) AS BIGINT) AS monitored_agents_available
    FROM agent_state_snapshot AS s
    JOIN agent AS a ON a.agent_id = s.agent_id
    WHERE a.monitored
    GROUP BY s.snapshot_id
)

SELECT
    c.snapshot_id,
    c.snapshot_at,
    DAY_DATE(IDIV(EPOCH_US(c.snapshot_at), 86400000000)) AS day,
    c.available_slots,
    m.monitored_active_chats,
    m.monitored_agents_available
FROM chat_slots_snapshot AS c
LEFT JOIN monitored AS m ON m.snapshot_id = c.snapshot_id
