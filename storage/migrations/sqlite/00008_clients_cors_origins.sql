-- Browser origins allowed to call the token and revocation endpoints as a
-- client (allowed_cors_origins): a JSON list like grant_types and audience.
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
ALTER TABLE clients ADD COLUMN allowed_cors_origins TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE clients DROP COLUMN allowed_cors_origins;
