-- /metrics counts tokens per status and apps per state at scrape time: each count a scan of
-- an index, not of the rows (issue 13).
CREATE INDEX tokens_by_status ON tokens (status);
CREATE INDEX apps_by_state ON apps (state);
