package storage_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// sqliteFiles are the database file and the two SQLite creates beside it
// in WAL mode.
func sqliteFiles(path string) []string { return []string{path, path + "-wal", path + "-shm"} }

// checkPrivate fails unless every file exists with mode 0600.
func checkPrivate(t *testing.T, paths []string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat %s: %v", filepath.Base(p), err)
			continue
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %#o, want 0600: it holds password hashes, token sessions and sealed keys", filepath.Base(p), mode)
		}
	}
}

// TestSQLiteFilesPrivate: a new database and its -wal and -shm files are
// readable by their owner only, whatever the process umask.
func TestSQLiteFilesPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := storagetest.OpenDSN(t, "sqlite://"+path)
	if err := s.CreateUser(t.Context(), &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, sqliteFiles(path))
}

// TestSQLiteFilesTightened: Open makes an existing database readable by
// its owner only, and says so.
func TestSQLiteFilesTightened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := storagetest.OpenDSN(t, "sqlite://"+path)
	if err := s.CreateUser(t.Context(), &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range sqliteFiles(path) {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	s2, err := storage.Open(t.Context(), "sqlite://"+path, storage.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	if _, err := s2.GetUser(t.Context(), "u1"); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, sqliteFiles(path))
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), filepath.Base(path)) {
		t.Errorf("tightening was not logged as a warning:\n%s", buf.String())
	}
}
