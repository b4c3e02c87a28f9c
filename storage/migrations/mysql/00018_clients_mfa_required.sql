-- clients.mfa_required (issue 11): an administrator requires a second factor
-- of every user logging in through this client. Default false.
-- MySQL commits DDL implicitly, so this runs without a transaction and must
-- be safe to run again (as migration 00014 explains). One DDL statement.
-- +goose NO TRANSACTION

-- +goose Up
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clients' AND COLUMN_NAME = 'mfa_required') = 0,
    'ALTER TABLE clients ADD COLUMN mfa_required BOOLEAN NOT NULL DEFAULT FALSE',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;

-- +goose Down
SET @portcullis_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clients' AND COLUMN_NAME = 'mfa_required') > 0,
    'ALTER TABLE clients DROP COLUMN mfa_required',
    'DO 0');
PREPARE portcullis_ddl FROM @portcullis_ddl;
EXECUTE portcullis_ddl;
DEALLOCATE PREPARE portcullis_ddl;
