-- users.mfa_required (issue 11): an administrator requires a second factor
-- of this user, whatever client they log in through. Default false.
-- MySQL commits DDL implicitly, so this runs without a transaction and must
-- be safe to run again (as migration 00014 explains). One DDL statement.
-- +goose NO TRANSACTION

-- +goose Up
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'mfa_required') = 0,
    'ALTER TABLE users ADD COLUMN mfa_required BOOLEAN NOT NULL DEFAULT FALSE',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;

-- +goose Down
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'mfa_required') > 0,
    'ALTER TABLE users DROP COLUMN mfa_required',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;
