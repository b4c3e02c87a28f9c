-- Authorization codes (issue 11) issued by the authorization challenge
-- endpoint and redeemed once at the token endpoint. signature is the hex
-- SHA-256 of fosite's code signature; active turns false when the code is
-- redeemed (or its owner's password changes), and the row stays until it
-- expires so that a second redemption is recognised and revokes what the
-- first issued (RFC 6749 §4.1.2). request is the sanitized fosite request
-- (with the PKCE code_challenge), as for refresh tokens.
-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS oauth2_authorization_codes (
    signature    CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    request_id   VARCHAR(64)  NOT NULL,
    client_id    VARCHAR(255) NOT NULL,
    subject      VARCHAR(255) NOT NULL,
    active       BOOLEAN      NOT NULL,
    requested_at DATETIME(6)  NOT NULL,
    expires_at   DATETIME(6)  NOT NULL,
    request      MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (signature),
    KEY oauth2_authorization_codes_subject (subject),
    KEY oauth2_authorization_codes_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS oauth2_authorization_codes;
