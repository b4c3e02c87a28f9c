-- One-time recovery codes of users (issue 11), as the SHA-256 digests of
-- their normalized form (identity/totp.HashRecoveryCode). used_at is NULL
-- until the code is used: a code counts only with a conditional UPDATE …
-- WHERE used_at IS NULL, which exactly one replica wins. The primary key
-- (every table has one, as Galera needs) makes a user's digests unique.
-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
-- No foreign key to users (as for user_factors); DeleteUser deletes a
-- user's codes in the same transaction.
CREATE TABLE IF NOT EXISTS user_recovery_codes (
    user_id   VARCHAR(64) NOT NULL,
    code_hash BINARY(32)  NOT NULL,
    used_at   DATETIME(6) NULL,
    PRIMARY KEY (user_id, code_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS user_recovery_codes;
