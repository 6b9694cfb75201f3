-- The device sign-in (RFC 8628) of a token: at most one per token (a new start replaces it).
-- The device code is sealed and cleared once the flow ends; the background pass polls the
-- rows whose next_poll_at is due (NULL once the flow ended), through the index.
CREATE TABLE device_flows (
    id                        TEXT PRIMARY KEY,
    token_id                  TEXT NOT NULL UNIQUE REFERENCES tokens(id) ON DELETE CASCADE,
    device_code               BLOB,
    user_code                 TEXT NOT NULL,
    verification_uri          TEXT NOT NULL,
    verification_uri_complete TEXT,
    interval_secs             BIGINT NOT NULL,
    status                    TEXT NOT NULL,
    error                     TEXT,
    started_by                TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
    expires_at                BIGINT NOT NULL,
    next_poll_at              BIGINT,
    updated_at                BIGINT NOT NULL
);
CREATE INDEX device_flows_due ON device_flows (next_poll_at, id);
