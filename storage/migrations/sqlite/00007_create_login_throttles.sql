-- SQLite runs DDL inside goose's transaction, so the table and its
-- indexes are created atomically in one step.

-- +goose Up
-- Password-guessing counters and trusted-network markers
-- (identity.LockoutPolicy), keyed by SHA-256 digests of the normalized
-- username (and client network): they exist for usernames that have no
-- account too. A row may be deleted once expires_at has passed.
CREATE TABLE IF NOT EXISTS login_throttles (
    throttle_key TEXT     NOT NULL PRIMARY KEY,
    account_key  TEXT     NOT NULL,
    failures     INTEGER  NOT NULL,
    last_at      DATETIME NOT NULL,
    expires_at   DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS login_throttles_account_key ON login_throttles (account_key);
CREATE INDEX IF NOT EXISTS login_throttles_expires_at ON login_throttles (expires_at);

-- +goose Down
DROP TABLE IF EXISTS login_throttles;
