-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS users (
    id                  VARCHAR(64)  NOT NULL,
    username            VARCHAR(255) NOT NULL,
    username_normalized VARCHAR(255) NOT NULL,
    password_hash       VARCHAR(512) NOT NULL,
    roles               TEXT         NOT NULL,
    disabled            BOOLEAN      NOT NULL DEFAULT FALSE,
    failed_logins       INT          NOT NULL DEFAULT 0,
    first_failed_at     DATETIME(6)  NULL,
    locked_until        DATETIME(6)  NULL,
    created_at          DATETIME(6)  NOT NULL,
    updated_at          DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_username_normalized (username_normalized)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS users;
