-- Second factors of users (issue 11): TOTP secrets sealed under the secrets
-- key (package identity/totp, purpose seal.TOTPSecret bound to id), with the
-- wrap-key ID that sealed them, as for signing keys. confirmed_at is NULL
-- while enrolment is unfinished. last_used_step is the last TOTP time step
-- a code was accepted for: a code counts only with a conditional UPDATE …
-- WHERE last_used_step < step.
-- SQLite runs DDL inside goose's transaction, so the table and its index
-- are created atomically in one step. Deleting a user deletes its factors
-- (the foreign key, and DeleteUser itself, as on MySQL).

-- +goose Up
CREATE TABLE IF NOT EXISTS user_factors (
    id             TEXT     NOT NULL PRIMARY KEY,
    user_id        TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           TEXT     NOT NULL,
    sealed         BLOB     NOT NULL,
    wrap_key_id    TEXT     NOT NULL,
    confirmed_at   DATETIME NULL,
    last_used_step INTEGER  NOT NULL DEFAULT 0,
    created_at     DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS user_factors_user_id ON user_factors (user_id);

-- +goose Down
DROP TABLE IF EXISTS user_factors;
