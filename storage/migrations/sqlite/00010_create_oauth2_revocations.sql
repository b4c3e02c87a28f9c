-- Revoked grants (issue 9: access tokens are stateless JWTs and no longer
-- stored). One row per revocation of a grant (the sid claim of its access
-- tokens), kept until every access token the grant could have had has
-- expired. id orders the rows for the replicas that poll for new ones
-- (AUTOINCREMENT: never reused, even after the newest rows are deleted).

-- +goose Up
CREATE TABLE IF NOT EXISTS oauth2_revocations (
    id         INTEGER  NOT NULL PRIMARY KEY AUTOINCREMENT,
    grant_id   TEXT     NOT NULL,
    revoked_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth2_revocations_expires_at ON oauth2_revocations (expires_at);

-- +goose Down
DROP TABLE IF EXISTS oauth2_revocations;
