package storage_test

import (
	"database/sql"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" database/sql driver, for EXPLAIN
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// revokeSubjectSQL is RevokeSubject's statement on the refresh tokens.
const revokeSubjectSQL = "UPDATE oauth2_refresh_tokens SET active = ? WHERE subject = ? AND active = ?"

// TestSQLiteRevokeSubjectUsesAnIndex: a password change, disabling or
// deletion revokes the user's refresh tokens by subject through an index,
// not by scanning every token row kept (migration 00011).
func TestSQLiteRevokeSubjectUsesAnIndex(t *testing.T) {
	dsn := storagetest.SQLiteDSN(t)
	storagetest.OpenDSN(t, dsn)
	db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+revokeSubjectSQL, false, "u", true)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "USING INDEX oauth2_refresh_tokens_subject") {
		t.Errorf("RevokeSubject's plan is %q, want a search using index oauth2_refresh_tokens_subject", p)
	}
}

// TestMySQLRevokeSubjectUsesAnIndex is TestSQLiteRevokeSubjectUsesAnIndex
// on MySQL.
func TestMySQLRevokeSubjectUsesAnIndex(t *testing.T) {
	storagetest.RequireMySQL(t)
	dsn := storagetest.MySQLDSN(t)
	storagetest.OpenDSN(t, dsn)
	cfg, err := gomysql.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "EXPLAIN "+revokeSubjectSQL, false, "u", true)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			if c == "possible_keys" && strings.Contains(vals[i].String, "oauth2_refresh_tokens_subject") {
				found = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Error("EXPLAIN of RevokeSubject's UPDATE lists no oauth2_refresh_tokens_subject among its possible keys")
	}
}
