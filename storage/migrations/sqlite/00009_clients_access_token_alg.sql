-- The JWS algorithm of a client's access tokens (access_token_signed_response_alg):
-- '' for the server's default, or ES256 / RS256 (RFC 9068 §2.1).
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
ALTER TABLE clients ADD COLUMN access_token_signing_alg TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clients DROP COLUMN access_token_signing_alg;
