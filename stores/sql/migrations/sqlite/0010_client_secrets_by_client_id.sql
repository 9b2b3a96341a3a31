-- A client credential by its client id, the oldest first: one index entry per credential. The
-- index on client_id alone also holds every bearer token minted from the credential (they carry
-- its client id), which the lookup read and sorted, more of them the longer it was used.
CREATE INDEX tokens_client_secret ON tokens (client_id, created_at, id) WHERE kind = 'cs';
