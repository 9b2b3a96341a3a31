-- The audit log: who changed what, when and from where. Newest last; `at` is BIGINT Unix
-- nanoseconds (UTC).
CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    tenant TEXT COLLATE "C",
    target TEXT,
    source TEXT
);

CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
