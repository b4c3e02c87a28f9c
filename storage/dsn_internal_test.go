package storage

import (
	"database/sql"
	"os"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
)

// TestMySQLStatementsAreNotPrepared checks on a real server that the
// store's connections send a statement with arguments without preparing
// it (interpolateParams, see ParseDSN), and that a DSN saying
// interpolateParams=false still gets server-side prepared statements. It
// needs $PORTCULLIS_TEST_MYSQL_DSN (storagetest.MySQLEnv, not imported
// here: storagetest imports this package) and only reads the session's
// Com_stmt_prepare counter on the information_schema database.
func TestMySQLStatementsAreNotPrepared(t *testing.T) {
	raw := os.Getenv("PORTCULLIS_TEST_MYSQL_DSN")
	if raw == "" {
		t.Skip("PORTCULLIS_TEST_MYSQL_DSN not set; skipping this MySQL test")
	}
	cfg, err := gomysql.ParseDSN(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = "information_schema"
	base := "mysql://" + cfg.FormatDSN()
	sep := "?"
	if cfg.ParseTime || len(cfg.Params) > 0 {
		sep = "&"
	}
	tests := []struct {
		name, dsn string
		prepares  int
	}{
		{"default", base, 0},
		{"interpolateParams=false", base + sep + "interpolateParams=false", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s, err := Open(ctx, tt.dsn, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			conn, err := s.pool.Conn(ctx)
			if err != nil {
				t.Fatalf("connect (is %s reachable?): %v", "PORTCULLIS_TEST_MYSQL_DSN", err)
			}
			defer conn.Close()
			prepared := func() int {
				var name string
				var n int
				if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			before := prepared()
			var one int
			if err := conn.QueryRowContext(ctx, "SELECT ?", 1).Scan(&one); err != nil || one != 1 {
				t.Fatalf("SELECT ? = %d, %v", one, err)
			}
			var got sql.NullString
			if err := conn.QueryRowContext(ctx, "SELECT ?", "it's a \\ test").Scan(&got); err != nil || got.String != "it's a \\ test" {
				t.Fatalf("SELECT ? = %q, %v: a quote or backslash was not escaped", got.String, err)
			}
			if d := prepared() - before; d != 2*tt.prepares {
				t.Errorf("two statements with arguments prepared %d server-side statements, want %d", d, 2*tt.prepares)
			}
		})
	}
}
