package storage_test

import (
	"database/sql"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// TestMySQLMigrateWithoutDDLPrivileges: a common production set-up runs
// `portcullis migrate` as an owner account and the replicas as an account
// with data privileges only (SELECT, INSERT, UPDATE, DELETE). Once the
// schema is current, serve's Migrate has nothing to apply and must
// succeed for that account: it may not need CREATE.
func TestMySQLMigrateWithoutDDLPrivileges(t *testing.T) {
	dsn := storagetest.MySQLDSN(t)
	owner, err := storage.Open(t.Context(), dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Close() })
	if _, err := owner.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg, err := gomysql.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	const user = "portcullis_dml"
	for _, q := range []string{
		"DROP USER IF EXISTS '" + user + "'@'%'",
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'dml-pass'",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON " + cfg.DBName + ".* TO '" + user + "'@'%'",
	} {
		if _, err := admin.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	dml := cfg.Clone()
	dml.User, dml.Passwd = user, "dml-pass"
	replica, err := storage.Open(t.Context(), "mysql://"+dml.FormatDSN(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Close() })
	applied, err := replica.Migrate(t.Context())
	if err != nil {
		t.Fatalf("Migrate of a current schema as an account with data privileges only: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("applied %v on a current schema", applied)
	}
}
