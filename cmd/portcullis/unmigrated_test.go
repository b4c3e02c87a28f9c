package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRefusedCommandsLeaveTheDatabaseAlone: a command that refuses an
// unmigrated database ("the database schema is at version 0 …") has
// created or altered nothing. (Before, red team: storage.Open ran before
// the schema check: a mistyped path got an empty database file created,
// and an existing SQLite file of another application was switched to WAL
// journaling for good, and made mode 0600, before the command refused it.)
func TestCLIRefusedCommandsLeaveTheDatabaseAlone(t *testing.T) {
	t.Run("no file", func(t *testing.T) {
		e := newCLIEnv(t)
		path := strings.TrimPrefix(e.dsn, "sqlite://")
		if msg := e.fail(t, "", "users", "list"); !strings.Contains(msg, "schema is at version 0") || !strings.Contains(msg, "portcullis migrate") {
			t.Errorf("refusal %q does not say what to do", msg)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused `users list` created %s (stat: %v)", filepath.Base(path), err)
		}
	})
	t.Run("another application's database", func(t *testing.T) {
		e := newCLIEnv(t)
		db := openSQLite(t, e)
		for _, q := range []string{"PRAGMA journal_mode=DELETE", "CREATE TABLE notes (body TEXT)"} {
			if _, err := db.ExecContext(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		_ = db.Close()
		path := strings.TrimPrefix(e.dsn, "sqlite://")
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		e.fail(t, "", "clients", "list")
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("mode after a refused `clients list`: %v, %v; want 0644 as it was", fi.Mode().Perm(), err)
		}
		var mode string
		if err := openSQLite(t, e).QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "delete" {
			t.Errorf("journal_mode after a refused `clients list` = %q, want the file's own %q", mode, "delete")
		}
	})
}
