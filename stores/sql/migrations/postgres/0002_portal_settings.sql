-- What tenant users see and may grant: one row (id 1) holding the environment's portal
-- settings as a JSON document (the grantable scope catalogue and the two section switches).
CREATE TABLE portal_settings (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL
);
