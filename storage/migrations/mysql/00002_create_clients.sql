-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS clients (
    id          VARCHAR(255)   NOT NULL,
    name        VARCHAR(255)   NOT NULL,
    secret_hash VARBINARY(255) NULL,
    auth_method VARCHAR(32)    NOT NULL,
    grant_types TEXT           NOT NULL,
    scopes      TEXT           NOT NULL,
    audience    TEXT           NOT NULL,
    created_at  DATETIME(6)    NOT NULL,
    updated_at  DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    KEY clients_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS clients;
