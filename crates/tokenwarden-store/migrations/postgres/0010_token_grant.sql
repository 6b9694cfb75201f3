-- Issue 12: more ways to get a token.
--   grant_type:               how the token gets its access tokens (`authorization_code`,
--                             `client_credentials`, `device_code`, `snowflake_keypair`); fixed at
--                             creation. (`grant` is an SQL reserved word.)
--   client_auth:              how the client authenticates at the token endpoint
--                             (`client_secret_basic`, `client_secret_post`, `private_key_jwt`);
--                             NULL = the provider's default.
--   client_secret_expires_at: epoch ms when the client secret stops working at the provider, if
--                             known: reminders and app stop as for a refresh token's expiry.
ALTER TABLE tokens ADD COLUMN grant_type TEXT NOT NULL DEFAULT 'authorization_code';
ALTER TABLE tokens ADD COLUMN client_auth TEXT;
ALTER TABLE tokens ADD COLUMN client_secret_expires_at BIGINT;
