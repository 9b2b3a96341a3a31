-- Tokens: never the token itself, only its SHA-256 digest.
-- Timestamps are BIGINT Unix nanoseconds (UTC); NULL means "never" (expires_at) or "not yet".
-- Scopes are a JSON array of strings, as text (the same as on SQLite).
-- Ids compare byte by byte (COLLATE "C"), as they do on SQLite and in memory.
CREATE TABLE tokens (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    digest        BYTEA  NOT NULL UNIQUE CHECK (octet_length(digest) = 32),
    stub          TEXT   NOT NULL,
    kind          TEXT   NOT NULL CHECK (kind IN ('at', 'cc', 'ci', 'cs')),
    tenant        TEXT COLLATE "C" NOT NULL,
    user_id       TEXT,
    description   TEXT   NOT NULL,
    scopes        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT,
    client_id     TEXT,
    credential_id TEXT COLLATE "C"
);

CREATE INDEX tokens_tenant_created ON tokens (tenant, created_at, id);
CREATE INDEX tokens_client_id ON tokens (client_id);
CREATE INDEX tokens_credential_id ON tokens (credential_id);

-- Which token type users may generate: one 'environment' row (tenant '') and one 'tenant' row
-- per tenant that overrides it. token_type is 'access' or 'client_credentials'.
CREATE TABLE token_type_settings (
    level      TEXT NOT NULL CHECK (level IN ('environment', 'tenant')),
    tenant     TEXT COLLATE "C" NOT NULL DEFAULT '',
    token_type TEXT NOT NULL CHECK (token_type IN ('access', 'client_credentials')),
    PRIMARY KEY (level, tenant),
    CHECK (level = 'tenant' OR tenant = '')
);
