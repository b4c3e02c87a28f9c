-- An index on the refresh tokens' subject: RevokeSubject (a password change,
-- disabling or deleting a user) marks a user's tokens inactive by subject,
-- which without it scans every refresh token row ever kept.
-- MySQL commits DDL implicitly, so this runs without a transaction and must
-- be safe to run again (a crash between the CREATE and goose's version row).
-- MariaDB has CREATE INDEX IF NOT EXISTS but MySQL 8 does not: the CREATE is
-- prepared only when information_schema lacks the index. goose runs a
-- NO TRANSACTION migration's statements on one connection, which keeps the
-- session variable and the prepared statement. One DDL statement.
-- +goose NO TRANSACTION

-- +goose Up
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.STATISTICS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'oauth2_refresh_tokens' AND INDEX_NAME = 'oauth2_refresh_tokens_subject') = 0,
    'CREATE INDEX oauth2_refresh_tokens_subject ON oauth2_refresh_tokens (subject)',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;

-- +goose Down
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.STATISTICS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'oauth2_refresh_tokens' AND INDEX_NAME = 'oauth2_refresh_tokens_subject') > 0,
    'DROP INDEX oauth2_refresh_tokens_subject ON oauth2_refresh_tokens',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;
