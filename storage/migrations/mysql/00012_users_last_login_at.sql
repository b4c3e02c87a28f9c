-- When the user last obtained tokens with their password. The password
-- grant writes it in the transaction that stores its tokens (LockUser), so
-- that on a multi-primary cluster (Galera) the login and a concurrent
-- password change, disabling or deletion of the user write the same row:
-- certification then aborts one of them, where read locks alone would let
-- both commit (row locks are not replicated).
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
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'last_login_at') = 0,
    'ALTER TABLE users ADD COLUMN last_login_at DATETIME(6) NULL',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;

-- +goose Down
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'last_login_at') > 0,
    'ALTER TABLE users DROP COLUMN last_login_at',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;
