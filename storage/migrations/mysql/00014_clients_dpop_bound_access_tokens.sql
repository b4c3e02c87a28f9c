-- Clients whose token requests must carry a DPoP proof
-- (dpop_bound_access_tokens, RFC 9449 §5.2). Default false.
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
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clients' AND COLUMN_NAME = 'dpop_bound_access_tokens') = 0,
    'ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;

-- +goose Down
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clients' AND COLUMN_NAME = 'dpop_bound_access_tokens') > 0,
    'ALTER TABLE clients DROP COLUMN dpop_bound_access_tokens',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;
