-- DPoP proofs accepted (RFC 9449 §11.1), so that each is used at most once
-- across every replica. id is the 43-character base64url SHA-256 that
-- package oauth/dpop derives from the proof's key and jti; SQLite compares
-- TEXT byte for byte (BINARY collation), so case matters as it must. A row
-- may be deleted once expires_at has passed: the proof is refused by its
-- age by then.

-- +goose Up
CREATE TABLE IF NOT EXISTS dpop_proofs (
    id         TEXT     NOT NULL PRIMARY KEY,
    expires_at DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS dpop_proofs_expires_at ON dpop_proofs (expires_at);

-- +goose Down
DROP TABLE IF EXISTS dpop_proofs;
