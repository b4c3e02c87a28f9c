-- +goose Up
CREATE TABLE IF NOT EXISTS users (
    id                  TEXT     NOT NULL PRIMARY KEY,
    username            TEXT     NOT NULL,
    username_normalized TEXT     NOT NULL UNIQUE,
    password_hash       TEXT     NOT NULL,
    roles               TEXT     NOT NULL DEFAULT '[]',
    disabled            BOOLEAN  NOT NULL DEFAULT 0,
    failed_logins       INTEGER  NOT NULL DEFAULT 0,
    first_failed_at     DATETIME NULL,
    locked_until        DATETIME NULL,
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL
);

-- +goose Down
DROP TABLE IF EXISTS users;
