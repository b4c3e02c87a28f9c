-- The audit trail (issue 12): one row per admin change or security event,
-- package audit. id orders the events (cursor pagination); rows older
-- than audit.retention are deleted by the garbage collector. No column
-- holds a secret, password, token or hash.

-- +goose Up
CREATE TABLE IF NOT EXISTS audit_events (
    id         INTEGER  NOT NULL PRIMARY KEY AUTOINCREMENT,
    recorded_at DATETIME NOT NULL,
    actor      TEXT     NOT NULL,
    action     TEXT     NOT NULL,
    target     TEXT     NOT NULL,
    outcome    TEXT     NOT NULL,
    client_ip  TEXT     NOT NULL,
    request_id TEXT     NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_recorded_at ON audit_events (recorded_at);
CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, id);
CREATE INDEX IF NOT EXISTS audit_events_target ON audit_events (target, id);

-- +goose Down
DROP TABLE IF EXISTS audit_events;
