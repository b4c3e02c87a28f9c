-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
-- Password-guessing counters and trusted-network markers
-- (identity.LockoutPolicy), keyed by SHA-256 digests of the normalized
-- username (and client network): they exist for usernames that have no
-- account too. A row may be deleted once expires_at has passed.
CREATE TABLE IF NOT EXISTS login_throttles (
    throttle_key CHAR(64)    NOT NULL,
    account_key  CHAR(64)    NOT NULL,
    failures     INT         NOT NULL,
    last_at      DATETIME(6) NOT NULL,
    expires_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (throttle_key),
    KEY login_throttles_account_key (account_key),
    KEY login_throttles_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;

-- +goose Down
DROP TABLE IF EXISTS login_throttles;
