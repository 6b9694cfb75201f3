-- tokenwarden schema v1 (SQLite). Instants are BIGINT milliseconds since the Unix epoch, UTC.
-- Every secret column holds a sealed value (tokenwarden-crypto), never plaintext.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Data keys, wrapped by the master key (which never enters the database).
CREATE TABLE encryption_keys (
    key_id     TEXT PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    active     BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Provider templates added by users (the built-in ones ship in the binary).
CREATE TABLE providers (
    id         TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    stop_reason TEXT,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Which tokens an app uses, by name: its own app-level token of that name, else the global one.
CREATE TABLE app_tokens (
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    token_name TEXT NOT NULL,
    PRIMARY KEY (app_id, token_name)
);
CREATE INDEX app_tokens_by_name ON app_tokens (token_name);

CREATE TABLE tokens (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    provider           TEXT NOT NULL,
    app_id             TEXT REFERENCES apps(id) ON DELETE CASCADE,
    -- '' for a global token, the owning app's id for an app-level one: names are unique per scope.
    scope_key          TEXT NOT NULL,
    settings           TEXT NOT NULL,
    client_id          TEXT,
    client_secret      BLOB,
    client_secret_2    BLOB,
    access_token       BLOB,
    refresh_token      BLOB,
    token_type         TEXT,
    scopes             TEXT,
    access_expires_at  BIGINT,
    refresh_expires_at BIGINT,
    issued_at          BIGINT,
    status             TEXT NOT NULL,
    status_reason      TEXT,
    version            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (scope_key, name)
);

-- App API keys and admin tokens: only a SHA-256 of the secret part is stored.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    app_id       TEXT REFERENCES apps(id) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_by_app ON api_keys (app_id);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT,
    object_name TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (at);
CREATE INDEX audit_events_by_object ON audit_events (object_id);

-- Webhook and email channels; app_id set = the channel hears only about that app and its tokens.
CREATE TABLE notification_channels (
    id         TEXT PRIMARY KEY,
    app_id     TEXT REFERENCES apps(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    secret     BLOB,
    enabled    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per reminder sent: (token, the refresh-token expiry it was about, lead time) is sent once.
CREATE TABLE reminders_sent (
    token_id           TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    refresh_expires_at BIGINT NOT NULL,
    lead               TEXT NOT NULL,
    sent_at            BIGINT NOT NULL,
    PRIMARY KEY (token_id, refresh_expires_at, lead)
);

-- Durable background jobs (refreshes, deliveries), claimed under a lease.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    dedupe_key       TEXT UNIQUE,
    payload          TEXT NOT NULL,
    run_at           BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    done_at          BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (done_at, run_at);

-- Named, owner-checked leases with a fencing counter that grows on every change of owner.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    fencing    BIGINT NOT NULL
);
