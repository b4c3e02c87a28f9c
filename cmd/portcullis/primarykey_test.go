package main

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// Galera replicates row images keyed by primary key: a table without one
// cannot be certified safely (deploy/galera/portcullis.cnf sets
// wsrep_mode=REQUIRED_PRIMARY_KEY, which refuses such tables). These
// tests migrate a database with the real binary and check, through
// information_schema, that every table has one.

// tablesWithoutPrimaryKey returns the base tables of schema that have no
// PRIMARY KEY, and how many base tables it has.
func tablesWithoutPrimaryKey(t *testing.T, db *sql.DB, schema string) (missing []string, tables int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT t.TABLE_NAME, c.CONSTRAINT_NAME IS NOT NULL
FROM information_schema.TABLES t
LEFT JOIN information_schema.TABLE_CONSTRAINTS c
  ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.CONSTRAINT_TYPE = 'PRIMARY KEY'
WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE'
ORDER BY t.TABLE_NAME`, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var hasPK bool
		if err := rows.Scan(&name, &hasPK); err != nil {
			t.Fatal(err)
		}
		tables++
		if !hasPK {
			missing = append(missing, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return missing, tables
}

// migrateAndCheckPrimaryKeys runs `portcullis migrate` on dsn (a
// Portcullis mysql:// DSN) and fails the test unless every table it
// created has a primary key. It returns a connection to the database.
func migrateAndCheckPrimaryKeys(t *testing.T, dsn string) (*sql.DB, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), string(portcullis), "migrate")
	cmd.Env = []string{"PORTCULLIS_DSN=" + dsn, "PORTCULLIS_SECRETS_KEY=" + proctest.RandomSecretsKey(t)}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("portcullis migrate: %v\n%s", err, out)
	}
	cfg, err := gomysql.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	missing, tables := tablesWithoutPrimaryKey(t, db, cfg.DBName)
	if len(missing) > 0 {
		t.Errorf("tables without a primary key after migrating: %q", missing)
	}
	// Every table a migration creates, goose's version table and the
	// migration lock's.
	want := append(migrationTables(t), "goose_db_version", "portcullis_locks")
	if tables != len(want) {
		t.Errorf("%d tables after migrating, want %d: %q", tables, len(want), want)
	}
	return db, cfg.DBName
}

// migrationTables returns the tables the MySQL migrations create.
func migrationTables(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../storage/migrations/mysql/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no MySQL migrations: %v", err)
	}
	re := regexp.MustCompile(`(?i)CREATE TABLE (?:IF NOT EXISTS )?` + "`?" + `(\w+)`)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out = append(out, string(m[1]))
		}
	}
	return out
}

// TestMySQLEveryTableHasPrimaryKey migrates a MariaDB (or MySQL) database
// and checks that every table has a primary key; then that the check
// finds a table without one.
func TestMySQLEveryTableHasPrimaryKey(t *testing.T) {
	t.Parallel()
	db, schema := migrateAndCheckPrimaryKeys(t, storagetest.MySQLDSN(t))
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE no_pk_probe (x INT)"); err != nil {
		t.Fatal(err)
	}
	if missing, _ := tablesWithoutPrimaryKey(t, db, schema); !slices.Equal(missing, []string{"no_pk_probe"}) {
		t.Fatalf("a table without a primary key was reported as %q", missing)
	}
}

// TestGaleraEveryTableHasPrimaryKey migrates a database on a Galera node
// running with deploy/galera/portcullis.cnf, whose wsrep_mode
// REQUIRED_PRIMARY_KEY refuses tables without a primary key: every
// migration is accepted and every table has one.
func TestGaleraEveryTableHasPrimaryKey(t *testing.T) {
	t.Parallel()
	g := testkit.StartGalera(t, 1)
	node := g.Nodes[0]
	db, _ := migrateAndCheckPrimaryKeys(t, node.DSN(g.NewDatabase(t)))
	var mode string
	if err := db.QueryRowContext(t.Context(), "SELECT @@GLOBAL.wsrep_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mode, "REQUIRED_PRIMARY_KEY") {
		t.Fatalf("wsrep_mode %q: portcullis.cnf's REQUIRED_PRIMARY_KEY is not in effect", mode)
	}
	// The mode bites: a table without a primary key is refused.
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE no_pk_probe (x INT)"); err == nil {
		t.Fatal("wsrep_mode=REQUIRED_PRIMARY_KEY accepted a table without a primary key")
	}
}
