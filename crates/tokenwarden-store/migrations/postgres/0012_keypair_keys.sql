-- Signing keys tokenwarden generated for a token (issue 12): a Snowflake key-pair token's RSA
-- key, or the key of a token that authenticates with private_key_jwt. One row per token, kept
-- apart from the token row. The keys are sealed PKCS#8 PEM (SealedColumn::TokenSigningKey,
-- TokenSigningKeyNext; the AAD names this table, the column and the row id = the token id).
CREATE TABLE token_keys (
    id               TEXT PRIMARY KEY REFERENCES tokens(id) ON DELETE CASCADE,
    -- The key tokenwarden signs with now.
    signing_key      BYTEA NOT NULL,
    -- A rotation's new key, not signing yet (its public key is being assigned).
    signing_key_next BYTEA,
    -- Snowflake: the user property holding signing_key's public key
    -- ('rsa_public_key' or 'rsa_public_key_2'); NULL for private_key_jwt.
    slot             TEXT,
    version          BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
