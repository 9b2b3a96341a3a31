-- A tenant's tokens of one user, oldest first: the per-user listing and the removal of a user.
CREATE INDEX tokens_tenant_user ON tokens (tenant, user_id, created_at, id);
