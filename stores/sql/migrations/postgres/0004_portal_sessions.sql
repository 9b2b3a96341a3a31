-- Who created a token, as listings show it (a portal user's display name).
ALTER TABLE tokens ADD COLUMN created_by TEXT;

-- Portal sessions: a tenant user signed in to the tenant portal. Only the SHA-256 digests of
-- the one-time code (NULL once spent) and of the session secret (NULL until the code is
-- redeemed) are kept. Timestamps are BIGINT Unix nanoseconds (UTC); permissions are a JSON
-- array of scopes, as text.
CREATE TABLE portal_sessions (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant          TEXT COLLATE "C" NOT NULL,
    user_id         TEXT   NOT NULL,
    display_name    TEXT   NOT NULL,
    role            TEXT   NOT NULL CHECK (role IN ('admin', 'member')),
    permissions     TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    code_digest     BYTEA  UNIQUE CHECK (octet_length(code_digest) = 32),
    code_expires_at BIGINT NOT NULL,
    secret_digest   BYTEA  UNIQUE CHECK (octet_length(secret_digest) = 32)
);

CREATE INDEX portal_sessions_user ON portal_sessions (tenant, user_id);

-- A tenant's API tokens (no user), oldest first.
CREATE INDEX tokens_tenant_api ON tokens (tenant, created_at, id) WHERE user_id IS NULL AND kind <> 'cc';
