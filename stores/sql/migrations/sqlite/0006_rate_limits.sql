-- A token's rate limit: at most rate_limit requests per rate_window seconds. Both are set or
-- neither is.
ALTER TABLE tokens ADD COLUMN rate_limit INTEGER NULL;
ALTER TABLE tokens ADD COLUMN rate_window INTEGER NULL;
