-- Browser origins allowed to call the token and revocation endpoints as a
-- client (allowed_cors_origins): a JSON list like grant_types and audience.
-- A TEXT column takes no literal DEFAULT on MySQL before 8.0.13, so rows
-- written before this step read '' (the implicit default), which storage
-- reads as an empty list.
-- MySQL commits DDL implicitly, so this runs without a transaction and must
-- be safe to run again (a crash between the ALTER and goose's version row).
-- MariaDB has ADD COLUMN IF NOT EXISTS but MySQL 8 does not: the ALTER is
-- prepared only when information_schema lacks the column. goose runs a
-- NO TRANSACTION migration's statements on one connection, which keeps the
-- session variable and the prepared statement. One DDL statement.
-- +goose NO TRANSACTION

-- +goose Up
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clients' AND COLUMN_NAME = 'allowed_cors_origins') = 0,
    'ALTER TABLE clients ADD COLUMN allowed_cors_origins TEXT NOT NULL',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;

-- +goose Down
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clients' AND COLUMN_NAME = 'allowed_cors_origins') > 0,
    'ALTER TABLE clients DROP COLUMN allowed_cors_origins',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;
