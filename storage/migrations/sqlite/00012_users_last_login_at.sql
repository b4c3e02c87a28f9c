-- When the user last obtained tokens with their password. The password
-- grant writes it in the transaction that stores its tokens (LockUser), so
-- that on a multi-primary cluster (Galera) the login and a concurrent
-- password change, disabling or deletion of the user write the same row:
-- certification then aborts one of them, where read locks alone would let
-- both commit (row locks are not replicated).
-- SQLite runs DDL in goose's transaction with the version row, so this
-- step is applied exactly once.

-- +goose Up
ALTER TABLE users ADD COLUMN last_login_at DATETIME NULL;

-- +goose Down
ALTER TABLE users DROP COLUMN last_login_at;
