-- agent_state_interval, persisted and maintained per run (pipelines/reporting/interval_store.py), so that a day's
-- time in state reads about 95,000 interval rows instead of rebuilding them from 7.2 M snapshots
-- (docs/reporting.md, "Performance and indexes"). The view agent_state_interval stays the reference definition:
-- the store holds exactly its rows (tests compare them).
--
-- agent_state_interval_store: every CLOSED row of the view (same columns, plus opened_at_us). The interval each
-- agent is in now is not here but in agent_state_open, whose row ends at the agent's last snapshot; readers take
-- both.
CREATE TABLE agent_state_interval_store (
    agent_id TEXT NOT NULL,
    chat_state_code INTEGER,
    chat_state TEXT,
    agent_group_id TEXT,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    seconds DOUBLE PRECISION,
    observed BOOLEAN NOT NULL,
    started_at_us BIGINT NOT NULL,
    ended_at_us BIGINT NOT NULL,
    -- not a view column: the time of the snapshot whose arrival started the row (its own, or for an unobserved
    -- or flap row the one after it), so a late snapshot rebuilds an agent from its previous snapshot on
    opened_at_us BIGINT NOT NULL
);
-- a day's read (ended_at_us > midnight AND started_at_us < next midnight) and retention (ended_at_us <= cutoff)
CREATE INDEX ix_agent_state_interval_store_ended ON agent_state_interval_store (ended_at_us, started_at_us);
-- one agent's history, in order: what a rebuild of that agent deletes
CREATE INDEX ix_agent_state_interval_store_agent ON agent_state_interval_store (agent_id, started_at_us);

-- agent_state_open: per agent, the open interval (the view's last row of the agent, which ends at its last
-- snapshot) and what the rules need of that last snapshot to place the next one.
CREATE TABLE agent_state_open (
    agent_id TEXT NOT NULL PRIMARY KEY,
    chat_state_code INTEGER,
    chat_state TEXT NOT NULL,
    agent_group_id TEXT,
    started_at TIMESTAMP,
    started_at_us BIGINT NOT NULL,
    started_shown_us BIGINT NOT NULL,
    last_snapshot_at TIMESTAMP NOT NULL,
    last_at_us BIGINT NOT NULL,
    last_reported_start_us BIGINT NOT NULL,
    last_interval_s INTEGER NOT NULL,
    opened_at_us BIGINT NOT NULL
);
