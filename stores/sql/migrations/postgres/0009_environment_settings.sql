-- Settings of the whole environment, one row each: 'bearer_format' is 'opaque' or 'jwt'.
CREATE TABLE environment_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
