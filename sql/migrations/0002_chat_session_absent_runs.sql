-- How many runs in a row a chat has been missing from its agent's chatSessions: the contract stops polling it
-- (stop_reason 'gone') after 3. Kept as a column so that the rule survives restarts.
ALTER TABLE chat_session ADD COLUMN absent_runs INTEGER NOT NULL DEFAULT 0;
