-- One row per authorization attempt: the one-time state (stored hashed), the token it is for,
-- who started it, the PKCE verifier (sealed) and the exact redirect URI sent.
CREATE TABLE oauth_states (
    id           TEXT PRIMARY KEY,
    state_hash   TEXT NOT NULL UNIQUE,
    token_id     TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    started_by   TEXT NOT NULL,
    session_hash TEXT,
    verifier     BLOB,
    redirect_uri TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at);
