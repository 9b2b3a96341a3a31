-- Tokens: never the token itself, only its SHA-256 digest.
-- Timestamps are INTEGER Unix nanoseconds (UTC); NULL means "never" (expires_at) or "not yet".
-- Scopes are a JSON array of strings.
CREATE TABLE tokens (
    id            TEXT    NOT NULL PRIMARY KEY,
    digest        BLOB    NOT NULL UNIQUE CHECK (length(digest) = 32),
    stub          TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('at', 'cc', 'ci', 'cs')),
    tenant        TEXT    NOT NULL,
    user_id       TEXT,
    description   TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    client_id     TEXT,
    credential_id TEXT
);

CREATE INDEX tokens_tenant_created ON tokens (tenant, created_at, id);
CREATE INDEX tokens_client_id ON tokens (client_id);
CREATE INDEX tokens_credential_id ON tokens (credential_id);

-- Which token type users may generate: one 'environment' row (tenant '') and one 'tenant' row
-- per tenant that overrides it. token_type is 'access' or 'client_credentials'.
CREATE TABLE token_type_settings (
    level      TEXT NOT NULL CHECK (level IN ('environment', 'tenant')),
    tenant     TEXT NOT NULL DEFAULT '',
    token_type TEXT NOT NULL CHECK (token_type IN ('access', 'client_credentials')),
    PRIMARY KEY (level, tenant),
    CHECK (level = 'tenant' OR tenant = '')
);
