-- auth_session values of the authorization challenge endpoint
-- (draft-ietf-oauth-first-party-apps §5.3, issue 11). handle is the hex
-- SHA-256 of the value the client holds (never the value itself); each
-- use replaces it with a new one in one conditional UPDATE, so a value
-- works once and concurrent uses of one value have exactly one winner.
-- state is the flow's JSON state, owned by package oauth/challenge.
-- grant_id names the grant whose tokens carried a step-up session (else
-- ''): revoking the grant deletes it.

-- +goose Up
CREATE TABLE IF NOT EXISTS auth_sessions (
    handle     TEXT     NOT NULL PRIMARY KEY,
    client_id  TEXT     NOT NULL,
    user_id    TEXT     NOT NULL,
    grant_id   TEXT     NOT NULL,
    jkt        TEXT     NOT NULL,
    state      TEXT     NOT NULL,
    expires_at DATETIME NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_sessions_user_id ON auth_sessions (user_id);
CREATE INDEX IF NOT EXISTS auth_sessions_expires_at ON auth_sessions (expires_at);
CREATE INDEX IF NOT EXISTS auth_sessions_grant_id ON auth_sessions (grant_id);

-- +goose Down
DROP TABLE IF EXISTS auth_sessions;
