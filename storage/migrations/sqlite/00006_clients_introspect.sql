-- Clients allowed to call the introspection endpoint (RFC 7662 §2.1).
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
ALTER TABLE clients ADD COLUMN introspection_allowed BOOLEAN NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN introspection_allowed;
