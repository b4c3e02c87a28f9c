-- Second factors of users (issue 11): TOTP secrets sealed under the secrets
-- key (package identity/totp, purpose seal.TOTPSecret bound to id), with the
-- wrap-key ID that sealed them, as for signing keys. confirmed_at is NULL
-- while enrolment is unfinished. last_used_step is the last TOTP time step
-- a code was accepted for: a code counts only with a conditional UPDATE …
-- WHERE last_used_step < step, which exactly one replica wins.
-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
-- No foreign key to users (as for refresh tokens: Vitess/PlanetScale-style
-- engines do not enforce them); DeleteUser deletes a user's factors in the
-- same transaction.
CREATE TABLE IF NOT EXISTS user_factors (
    id             VARCHAR(64)  NOT NULL,
    user_id        VARCHAR(64)  NOT NULL,
    kind           VARCHAR(16)  NOT NULL,
    sealed         BLOB         NOT NULL,
    wrap_key_id    VARCHAR(255) NOT NULL,
    confirmed_at   DATETIME(6)  NULL,
    last_used_step BIGINT       NOT NULL DEFAULT 0,
    created_at     DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY user_factors_user_id (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS user_factors;
