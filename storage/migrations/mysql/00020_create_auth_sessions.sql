-- auth_session values of the authorization challenge endpoint
-- (draft-ietf-oauth-first-party-apps §5.3, issue 11). handle is the hex
-- SHA-256 of the value the client holds (never the value itself); each
-- use replaces it with a new one in one conditional UPDATE, so a value
-- works once and concurrent uses of one value have exactly one winner.
-- state is the flow's JSON state, owned by package oauth/challenge.
-- grant_id names the grant whose tokens carried a step-up session (else
-- ''): revoking the grant deletes it.
-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS auth_sessions (
    handle     CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    client_id  VARCHAR(255) NOT NULL,
    user_id    VARCHAR(64)  NOT NULL,
    grant_id   VARCHAR(64)  NOT NULL,
    jkt        VARCHAR(64)  NOT NULL,
    state      TEXT         NOT NULL,
    expires_at DATETIME(6)  NOT NULL,
    created_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (handle),
    KEY auth_sessions_user_id (user_id),
    KEY auth_sessions_expires_at (expires_at),
    KEY auth_sessions_grant_id (grant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS auth_sessions;
