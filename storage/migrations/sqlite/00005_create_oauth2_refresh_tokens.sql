-- SQLite runs DDL inside goose's transaction, so the table and its
-- indexes are created atomically in one step.

-- +goose Up
CREATE TABLE IF NOT EXISTS oauth2_refresh_tokens (
    signature        TEXT     NOT NULL PRIMARY KEY,
    access_signature TEXT     NOT NULL DEFAULT '',
    request_id       TEXT     NOT NULL,
    client_id        TEXT     NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject          TEXT     NOT NULL DEFAULT '',
    active           BOOLEAN  NOT NULL DEFAULT 1,
    requested_at     DATETIME NOT NULL,
    expires_at       DATETIME NULL,
    rotated_at       DATETIME NULL,
    request          TEXT     NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth2_refresh_tokens_request_id ON oauth2_refresh_tokens (request_id);
CREATE INDEX IF NOT EXISTS oauth2_refresh_tokens_client_id ON oauth2_refresh_tokens (client_id);
CREATE INDEX IF NOT EXISTS oauth2_refresh_tokens_expires_at ON oauth2_refresh_tokens (expires_at);

-- +goose Down
DROP TABLE IF EXISTS oauth2_refresh_tokens;
