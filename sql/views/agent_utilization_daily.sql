-- agent_utilization_daily: agent_utilization_hourly summed over the UTC day (same rules, exact integer sums).
SELECT
    day,
    agent_id,
    CASE
        WHEN SUM(active_snapshots) > 0
            THEN CAST(SUM(active_chats_sum) AS DOUBLE PRECISION) / CAST(SUM(active_snapshots) AS DOUBLE PRECISION)
    END AS avg_active_chats,
    MAX(max_chats) AS max_chats,
    CASE
        WHEN SUM(capacity_sum) > 0
            THEN CAST(SUM(capped_chats_sum) AS DOUBLE PRECISION) / CAST(SUM(capacity_sum) AS DOUBLE PRECISION)
    END AS utilization,
    CAST(SUM(chats_handled) AS BIGINT) AS chats_handled,
    CAST(SUM(snapshots) AS BIGINT) AS snapshots,
    CAST(SUM(active_snapshots) AS BIGINT) AS active_snapshots
FROM agent_utilization_hourly
GROUP BY day, agent_id
