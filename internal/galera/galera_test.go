package galera_test

import (
	"os"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/galera"
)

// TestGaleraStandalone starts the single server a cluster is compared
// with: it has the settings of deploy/galera/portcullis.cnf but no Galera
// provider, and stops by its PID.
func TestGaleraStandalone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mariadbd process; skipped in -short mode")
	}
	if missing := galera.Missing(); missing != "" {
		if os.Getenv("PORTCULLIS_TEST_GALERA") != "" {
			t.Fatalf("PORTCULLIS_TEST_GALERA is set but %s", missing)
		}
		t.Skipf("skipping this Galera test: %s (install mariadb-server, galera-4 and rsync; set PORTCULLIS_TEST_GALERA=1 to make this a failure)", missing)
	}
	cnf, err := galera.ModuleFile(galera.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := galera.StartStandalone(cnf)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := s.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string]string{
		"wsrep_on": "0", "wsrep_provider": "none",
		// The cnf's settings apply.
		"binlog_format": "ROW", "innodb_autoinc_lock_mode": "2",
	} {
		var got string
		if err := db.QueryRow("SELECT @@GLOBAL." + name).Scan(&got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	pid := s.PID()
	s.Close()
	if s.PID() != 0 {
		t.Fatal("PID after Close is not 0")
	}
	if err := s.WaitReady(0); err == nil {
		t.Fatal("a stopped server is ready")
	}
	if p, err := os.FindProcess(pid); err == nil && p.Signal(nil) == nil {
		t.Fatalf("mariadbd %d still runs after Close", pid)
	}
}
