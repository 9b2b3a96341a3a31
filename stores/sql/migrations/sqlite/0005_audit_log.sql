-- The audit log: who changed what, when and from where. Newest last; `at` is INTEGER Unix
-- nanoseconds (UTC).
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    tenant TEXT,
    target TEXT,
    source TEXT
);

CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
