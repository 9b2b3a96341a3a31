-- The keys JWT access tokens are signed with: the private key as PKCS#8 DER, the public key as
-- a JWK (JSON). The newest key not retired signs; retired keys stay published until the tokens
-- they signed have expired. Timestamps are Unix nanoseconds (UTC).
CREATE TABLE signing_keys (
    kid         TEXT    NOT NULL PRIMARY KEY,
    algorithm   TEXT    NOT NULL,
    private_key BYTEA   NOT NULL,
    public_jwk  TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
