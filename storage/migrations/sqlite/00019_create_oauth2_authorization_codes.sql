-- Authorization codes (issue 11) issued by the authorization challenge
-- endpoint and redeemed once at the token endpoint. signature is the hex
-- SHA-256 of fosite's code signature; active turns false when the code is
-- redeemed (or its owner's password changes), and the row stays until it
-- expires so that a second redemption is recognised and revokes what the
-- first issued (RFC 6749 §4.1.2). request is the sanitized fosite request
-- (with the PKCE code_challenge), as for refresh tokens.

-- +goose Up
CREATE TABLE IF NOT EXISTS oauth2_authorization_codes (
    signature    TEXT     NOT NULL PRIMARY KEY,
    request_id   TEXT     NOT NULL,
    client_id    TEXT     NOT NULL,
    subject      TEXT     NOT NULL,
    active       BOOLEAN  NOT NULL,
    requested_at DATETIME NOT NULL,
    expires_at   DATETIME NOT NULL,
    request      TEXT     NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth2_authorization_codes_subject ON oauth2_authorization_codes (subject);
CREATE INDEX IF NOT EXISTS oauth2_authorization_codes_expires_at ON oauth2_authorization_codes (expires_at);

-- +goose Down
DROP TABLE IF EXISTS oauth2_authorization_codes;
