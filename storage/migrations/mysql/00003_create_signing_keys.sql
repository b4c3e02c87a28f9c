-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS signing_keys (
    id           VARCHAR(255) NOT NULL,
    generation   BIGINT       NOT NULL,
    algorithm    VARCHAR(16)  NOT NULL,
    public_jwk   TEXT         NOT NULL,
    sealed       BLOB         NOT NULL,
    wrap_key_id  VARCHAR(255) NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    activates_at DATETIME(6)  NOT NULL,
    retired_at   DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY signing_keys_generation (generation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS signing_keys;
