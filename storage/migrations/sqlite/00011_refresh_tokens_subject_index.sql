-- An index on the refresh tokens' subject: RevokeSubject (a password change,
-- disabling or deleting a user) marks a user's tokens inactive by subject,
-- which without it scans every refresh token row ever kept.
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
CREATE INDEX IF NOT EXISTS oauth2_refresh_tokens_subject ON oauth2_refresh_tokens (subject);

-- +goose Down
DROP INDEX IF EXISTS oauth2_refresh_tokens_subject;
