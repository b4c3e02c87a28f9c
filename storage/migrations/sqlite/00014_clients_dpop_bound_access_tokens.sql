-- Clients whose token requests must carry a DPoP proof
-- (dpop_bound_access_tokens, RFC 9449 §5.2). Default false.
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN dpop_bound_access_tokens;
