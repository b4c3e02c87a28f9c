-- DPoP proofs accepted (RFC 9449 §11.1), so that each is used at most once
-- across every replica. id is the 43-character base64url SHA-256 that
-- package oauth/dpop derives from the proof's key and jti: ASCII with a
-- binary collation, since base64url is case-sensitive ("A" and "a" are
-- different proofs). A row may be deleted once expires_at has passed: the
-- proof is refused by its age by then.
-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS dpop_proofs (
    id         CHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY dpop_proofs_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS dpop_proofs;
