-- The client credentials revoked recently, read when a follower of revocations lost track and
-- must hear them again (the JWTs minted from them are refused only by their revocation).
CREATE INDEX tokens_revoked_credentials ON tokens (revoked_at) WHERE kind = 'cs' AND revoked_at IS NOT NULL;
