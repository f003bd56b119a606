-- The warehouse tables of the data contract (docs: /work/shared/spec/data-contract.md, "Warehouse tables").
-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Timestamps are naive UTC; API ids are TEXT;
-- event ids and cursors BIGINT. "by" and "at" are quoted because they are SQL keywords.

CREATE TABLE snapshot_run (
    snapshot_id TEXT NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status TEXT,
    source TEXT,
    account_id TEXT,
    interval_s INTEGER,
    agents INTEGER,
    chats INTEGER,
    events INTEGER,
    errors INTEGER,
    parquet_written_at TIMESTAMP,
    PRIMARY KEY (snapshot_id)
);

CREATE TABLE agent_state_snapshot (
    snapshot_id TEXT NOT NULL,
    snapshot_at TIMESTAMP NOT NULL,
    agent_id TEXT NOT NULL,
    chat_state_code INTEGER,
    chat_state TEXT,
    voice_state_code INTEGER,
    voice_state TEXT,
    max_chats INTEGER,
    chats INTEGER,
    elapsed_in_state_ms BIGINT,
    state_started_at TIMESTAMP,
    agent_group_id TEXT,
    PRIMARY KEY (snapshot_id, agent_id)
);

CREATE INDEX ix_agent_state_snapshot_agent_time ON agent_state_snapshot (agent_id, snapshot_at);

CREATE TABLE agent (
    agent_id TEXT NOT NULL,
    user_name TEXT,
    nickname TEXT,
    email TEXT,
    privilege_group TEXT,
    agent_group_id TEXT,
    agent_group_name TEXT,
    monitored BOOLEAN,
    first_seen_at TIMESTAMP,
    last_seen_at TIMESTAMP,
    PRIMARY KEY (agent_id)
);

CREATE TABLE skill (
    skill_id TEXT NOT NULL,
    skill_name TEXT,
    first_seen_at TIMESTAMP,
    last_seen_at TIMESTAMP,
    PRIMARY KEY (skill_id)
);

CREATE TABLE agent_skill (
    agent_id TEXT NOT NULL,
    skill_id TEXT NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP,
    PRIMARY KEY (agent_id, skill_id, valid_from)
);

CREATE TABLE session_availability_snapshot (
    snapshot_id TEXT NOT NULL,
    snapshot_at TIMESTAMP NOT NULL,
    agent_id TEXT NOT NULL,
    chat TEXT,
    voice TEXT,
    PRIMARY KEY (snapshot_id, agent_id)
);

CREATE TABLE chat_slots_snapshot (
    snapshot_id TEXT NOT NULL,
    snapshot_at TIMESTAMP NOT NULL,
    available_slots INTEGER,
    PRIMARY KEY (snapshot_id)
);

CREATE TABLE chat_session (
    chat_id TEXT NOT NULL,
    chat_session_key TEXT,
    rt_session_id TEXT,
    monitored_by TEXT,
    first_seen_at TIMESTAMP,
    last_seen_at TIMESTAMP,
    state TEXT,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    agent_id TEXT,
    agent_name TEXT,
    skill_id TEXT,
    skill_name TEXT,
    visitor_id TEXT,
    visit_id TEXT,
    last_event_id BIGINT,
    next_from BIGINT,
    polling_stopped_at TIMESTAMP,
    stop_reason TEXT,
    info_json TEXT,
    PRIMARY KEY (chat_id)
);

CREATE INDEX ix_chat_session_polling ON chat_session (monitored_by, polling_stopped_at);

CREATE TABLE chat_event (
    chat_id TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    snapshot_id TEXT,
    event_type TEXT,
    event_time TIMESTAMP,
    source TEXT,
    "by" TEXT,
    state TEXT,
    text TEXT,
    text_length INTEGER,
    raw_json TEXT,
    ingested_at TIMESTAMP,
    PRIMARY KEY (chat_id, event_id)
);

CREATE INDEX ix_chat_event_snapshot ON chat_event (snapshot_id);

CREATE TABLE ingest_error (
    error_id TEXT NOT NULL,
    snapshot_id TEXT,
    endpoint TEXT,
    http_status INTEGER,
    error TEXT,
    payload TEXT,
    "at" TIMESTAMP,
    replayed_at TIMESTAMP,
    PRIMARY KEY (error_id)
);

CREATE INDEX ix_ingest_error_snapshot ON ingest_error (snapshot_id);
