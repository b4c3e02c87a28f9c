package storage_test

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

var wantMigrations = []string{
	"00001_create_users",
	"00002_create_clients",
	"00003_create_signing_keys",
	"00004_create_oauth2_access_tokens",
	"00005_create_oauth2_refresh_tokens",
	"00006_clients_introspect", "00007_create_login_throttles",
	"00008_clients_cors_origins",
	"00009_clients_access_token_alg",
	"00010_create_oauth2_revocations",
	"00011_refresh_tokens_subject_index",
	"00012_users_last_login_at",
	"00013_create_dpop_proofs",
	"00014_clients_dpop_bound_access_tokens",
	"00015_create_user_factors",
	"00016_create_user_recovery_codes", "00017_users_mfa_required", "00018_clients_mfa_required",
	"00019_create_oauth2_authorization_codes", "00020_create_auth_sessions", "00021_create_audit_events",
}

// testMigrateFresh migrates an empty database of driver twice: the first
// run applies every migration, in order, and records when; the second
// applies nothing.
func testMigrateFresh(t *testing.T, dsn, driver string) {
	s, err := storage.Open(t.Context(), dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	latest := int64(len(wantMigrations))
	if cur, lat, err := s.SchemaVersion(t.Context()); err != nil || cur != 0 || lat != latest {
		t.Fatalf("fresh database: SchemaVersion = %d, %d, %v; want 0, %d", cur, lat, err, latest)
	}
	st, err := s.MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if m.Applied {
			t.Fatalf("fresh database has %s applied", m.Name)
		}
	}
	tests := []struct {
		name string
		want []string
	}{
		{"first run applies everything", wantMigrations},
		{"second run applies nothing", nil},
	}
	for _, tt := range tests {
		applied, err := s.Migrate(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(applied, tt.want) {
			t.Fatalf("%s: applied %v, want %v", tt.name, applied, tt.want)
		}
		if cur, lat, err := s.SchemaVersion(t.Context()); err != nil || cur != latest || lat != latest {
			t.Fatalf("%s: SchemaVersion = %d, %d, %v; want %d, %d", tt.name, cur, lat, err, latest, latest)
		}
	}
	st, err = s.MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range st {
		names = append(names, m.Name)
		if !m.Applied || m.AppliedAt.IsZero() {
			t.Errorf("migration %s not recorded as applied: %+v", m.Name, m)
		}
	}
	if !slices.Equal(names, wantMigrations) {
		t.Errorf("MigrationStatus lists %v, want %v", names, wantMigrations)
	}
	if d := s.Driver(); d != driver {
		t.Errorf("Driver() = %q, want %q", d, driver)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, dsn, want string
	}{
		{"unknown scheme", "postgres://u:secret@h/db", `unsupported scheme "postgres"`},
		{"no scheme", "u:secret@tcp(h)/db", "no sqlite:// or mysql:// scheme"},
		{"empty", "", "required"},
		{"empty sqlite path", "sqlite://", "needs a file path"},
		{"sqlite with a query", "sqlite://p.db?_pragma=foreign_keys(0)", "without query parameters"},
		{"bad mysql DSN", "mysql://u:secret@not a dsn", "not a valid MySQL DSN"},
		{"mysql without a database", "mysql://u:secret@tcp(h:3306)/", "names no database"},
		{"mysql parseTime off", "mysql://u:secret@tcp(h:3306)/db?parseTime=false", "parseTime must be true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storage.Open(t.Context(), tt.dsn, storage.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v, want an error containing %q", tt.dsn, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

// TestUnreachableMySQL needs no server: nothing listens on port 1, so every
// call fails with an error matching apperr.ErrUnavailable (503).
func TestUnreachableMySQL(t *testing.T) {
	s, err := storage.Open(t.Context(), "mysql://root:@tcp(127.0.0.1:1)/portcullis?timeout=2s", storage.Options{})
	if err != nil {
		t.Fatalf("Open must not dial: %v", err)
	}
	defer s.Close()
	if s.Driver() != storage.DriverMySQL {
		t.Fatalf("Driver() = %q", s.Driver())
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(t.Context()) }},
		{"GetUser", func() error { _, err := s.GetUser(t.Context(), "x"); return err }},
		{"GetClient", func() error { _, err := s.GetClient(t.Context(), "x"); return err }},
		{"GetRefreshTokenSession", func() error { _, err := s.GetRefreshTokenSession(t.Context(), "x", nil); return err }},
		// The transaction begins with its first statement.
		{"BeginTX", func() error {
			tx, err := s.BeginTX(t.Context())
			if err == nil {
				_, err = s.GetUser(tx, "x")
				if cerr := s.Commit(tx); err == nil {
					err = cerr
				}
			}
			return err
		}},
		{"Migrate", func() error { _, err := s.Migrate(t.Context()); return err }},
		{"DeleteExpired", func() error { _, err := s.DeleteExpired(t.Context(), time.Now()); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, apperr.ErrUnavailable) {
				t.Fatalf("got %v, want an error matching apperr.ErrUnavailable", err)
			}
		})
	}
}

// TestSQLNotLoggedWithArguments checks that debug logging shows statements
// but never their arguments (password hashes, sealed keys, sessions).
func TestSQLNotLoggedWithArguments(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := storage.Open(t.Context(), storagetest.SQLiteDSN(t), storage.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	u := &identity.User{ID: "u1", Username: "alice", PasswordHash: "TOP-SECRET-HASH"}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUserByUsername(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "INSERT INTO") || !strings.Contains(out, "schema migration applied") {
		t.Fatalf("expected SQL and migration logs, got:\n%s", out)
	}
	if strings.Contains(out, "TOP-SECRET-HASH") || strings.Contains(out, `"alice"`) {
		t.Fatalf("log leaks statement arguments:\n%s", out)
	}
}

// TestParseDSNInterpolateParams: a MySQL DSN gets interpolateParams (one
// round trip per statement instead of prepare, execute, close) unless it
// turns it off.
func TestParseDSNInterpolateParams(t *testing.T) {
	tests := []struct {
		dsn  string
		want bool
	}{
		{"mysql://u:p@tcp(h:3306)/db", true},
		{"mysql://u:p@tcp(h:3306)/db?parseTime=true", true},
		{"mysql://u:p@tcp(h:3306)/db?interpolateParams=true", true},
		{"mysql://u:p@tcp(h:3306)/db?parseTime=true&interpolateParams=false", false},
	}
	for _, tt := range tests {
		d, err := storage.ParseDSN(tt.dsn)
		if err != nil {
			t.Fatalf("ParseDSN(%q): %v", tt.dsn, err)
		}
		if got := d.MySQL.InterpolateParams; got != tt.want {
			t.Errorf("ParseDSN(%q).MySQL.InterpolateParams = %v, want %v", tt.dsn, got, tt.want)
		}
	}
}
