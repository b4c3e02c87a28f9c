-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
-- No foreign key to clients: Vitess/PlanetScale-style engines do not enforce
-- them; DeleteClient deletes a client's tokens in the same transaction.
CREATE TABLE IF NOT EXISTS oauth2_refresh_tokens (
    signature        CHAR(64)     NOT NULL,
    access_signature VARCHAR(64)  NOT NULL DEFAULT '',
    request_id       VARCHAR(255) NOT NULL,
    client_id        VARCHAR(255) NOT NULL,
    subject          VARCHAR(255) NOT NULL DEFAULT '',
    active           BOOLEAN      NOT NULL DEFAULT TRUE,
    requested_at     DATETIME(6)  NOT NULL,
    expires_at       DATETIME(6)  NULL,
    rotated_at       DATETIME(6)  NULL,
    request          MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (signature),
    KEY oauth2_refresh_tokens_request_id (request_id),
    KEY oauth2_refresh_tokens_client_id (client_id),
    KEY oauth2_refresh_tokens_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS oauth2_refresh_tokens;
