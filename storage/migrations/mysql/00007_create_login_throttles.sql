-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
-- Password-guessing counters (identity.LockoutPolicy), keyed by SHA-256
-- digests of the normalized username (and client network): they exist for
-- usernames that have no account too.
CREATE TABLE IF NOT EXISTS login_throttles (
    throttle_key CHAR(64)    NOT NULL,
    account_key  CHAR(64)    NOT NULL,
    failures     INT         NOT NULL,
    last_at      DATETIME(6) NOT NULL,
    PRIMARY KEY (throttle_key),
    KEY login_throttles_account_key (account_key),
    KEY login_throttles_last_at (last_at)
) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;

-- +goose Down
DROP TABLE IF EXISTS login_throttles;
