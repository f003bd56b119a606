-- Reporting reads a day of agent_state_snapshot per agent in time order (the window PARTITION BY agent_id
-- ORDER BY snapshot_at of agent_state_interval, and the hourly utilization). This index holds every column those
-- views read, so SQLite answers from the index alone, seeking each agent's day (agent_id, then the snapshot_at
-- range) in the window's order: no table lookups and no sort (docs/reporting.md, "Performance and indexes").
-- Portable: a plain composite index (SQLite has no INCLUDE). ix_agent_state_snapshot_agent_time (0001) is its
-- prefix and kept for the code and tests that name it.
CREATE INDEX ix_agent_state_snapshot_reporting ON agent_state_snapshot (
    agent_id, snapshot_at, snapshot_id, chat_state_code, chat_state, elapsed_in_state_ms, state_started_at,
    agent_group_id, max_chats, chats
);
