-- A token's rate limit: at most rate_limit requests per rate_window seconds. Both are set or
-- neither is.
ALTER TABLE tokens ADD COLUMN rate_limit BIGINT NULL;
ALTER TABLE tokens ADD COLUMN rate_window BIGINT NULL;
