-- +goose Up
CREATE TABLE IF NOT EXISTS signing_keys (
    id           TEXT     NOT NULL PRIMARY KEY,
    generation   INTEGER  NOT NULL UNIQUE,
    algorithm    TEXT     NOT NULL,
    public_jwk   TEXT     NOT NULL,
    sealed       BLOB     NOT NULL,
    wrap_key_id  TEXT     NOT NULL,
    created_at   DATETIME NOT NULL,
    activates_at DATETIME NOT NULL,
    retired_at   DATETIME NULL
);

-- +goose Down
DROP TABLE IF EXISTS signing_keys;
