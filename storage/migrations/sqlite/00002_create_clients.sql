-- +goose Up
CREATE TABLE IF NOT EXISTS clients (
    id          TEXT     NOT NULL PRIMARY KEY,
    name        TEXT     NOT NULL,
    secret_hash BLOB     NULL,
    auth_method TEXT     NOT NULL,
    grant_types TEXT     NOT NULL DEFAULT '[]',
    scopes      TEXT     NOT NULL DEFAULT '[]',
    audience    TEXT     NOT NULL DEFAULT '[]',
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS clients_created_at ON clients (created_at);

-- +goose Down
DROP TABLE IF EXISTS clients;
