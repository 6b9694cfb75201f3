-- Refresh bookkeeping, kept apart from the versioned token row so that recording a failed
-- attempt never conflicts with an admin's edit.
CREATE TABLE token_health (
    token_id        TEXT PRIMARY KEY REFERENCES tokens(id) ON DELETE CASCADE,
    last_attempt_at BIGINT,
    last_success_at BIGINT,
    failures        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      TEXT,
    last_read_at    BIGINT,
    reads_total     BIGINT NOT NULL DEFAULT 0
);

-- Every attempt to deliver a notification, kept as the delivery log.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    job_id      TEXT NOT NULL,
    channel_id  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_kind  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    status_code BIGINT,
    error       TEXT
);
CREATE INDEX deliveries_by_channel ON deliveries (channel_id, at);
CREATE INDEX jobs_by_lease ON jobs (lease_expires_at);
