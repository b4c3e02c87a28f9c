-- Revoked grants (issue 9: access tokens are stateless JWTs and no longer
-- stored). One row per revocation of a grant (the sid claim of its access
-- tokens), kept until every access token the grant could have had has
-- expired. id orders the rows for the replicas that poll for new ones.
-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS oauth2_revocations (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    grant_id   VARCHAR(255)    NOT NULL,
    revoked_at DATETIME(6)     NOT NULL,
    expires_at DATETIME(6)     NOT NULL,
    PRIMARY KEY (id),
    KEY oauth2_revocations_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS oauth2_revocations;
