-- One-time recovery codes of users (issue 11), as the SHA-256 digests of
-- their normalized form (identity/totp.HashRecoveryCode). used_at is NULL
-- until the code is used: a code counts only with a conditional UPDATE …
-- WHERE used_at IS NULL. The primary key makes a user's digests unique.
-- SQLite runs DDL inside goose's transaction. Deleting a user deletes its
-- codes (the foreign key, and DeleteUser itself, as on MySQL).

-- +goose Up
CREATE TABLE IF NOT EXISTS user_recovery_codes (
    user_id   TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB     NOT NULL,
    used_at   DATETIME NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- +goose Down
DROP TABLE IF EXISTS user_recovery_codes;
