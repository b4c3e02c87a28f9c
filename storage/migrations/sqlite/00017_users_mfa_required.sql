-- users.mfa_required (issue 11): an administrator requires a second factor
-- of this user, whatever client they log in through. Default false.
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
ALTER TABLE users ADD COLUMN mfa_required BOOLEAN NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN mfa_required;
