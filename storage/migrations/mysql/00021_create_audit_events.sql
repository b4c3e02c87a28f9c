-- The audit trail (issue 12): one row per admin change or security event,
-- package audit. id orders the events (cursor pagination); rows older
-- than audit.retention are deleted by the garbage collector. No column
-- holds a secret, password, token or hash.
-- MySQL commits DDL implicitly: one idempotent statement, no transaction.
-- +goose NO TRANSACTION

-- +goose Up
CREATE TABLE IF NOT EXISTS audit_events (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    recorded_at DATETIME(6)  NOT NULL,
    actor      VARCHAR(300) NOT NULL,
    action     VARCHAR(64)  NOT NULL,
    target     VARCHAR(300) NOT NULL,
    outcome    VARCHAR(16)  NOT NULL,
    client_ip  VARCHAR(64)  NOT NULL,
    request_id VARCHAR(64)  NOT NULL,
    PRIMARY KEY (id),
    KEY audit_events_recorded_at (recorded_at),
    KEY audit_events_actor (actor, id),
    KEY audit_events_target (target, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE IF EXISTS audit_events;
