-- clients.mfa_required (issue 11): an administrator requires a second factor
-- of every user logging in through this client. Default false.
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
ALTER TABLE clients ADD COLUMN mfa_required BOOLEAN NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN mfa_required;
