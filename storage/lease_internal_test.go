package storage

import (
	"context"
	"os"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// leaseDB opens the database of $PORTCULLIS_TEST_MYSQL_DSN (the MySQL
// tests' variable) for the lease tests, with a lease table of a name of
// its own so that parallel tests do not meet.
func leaseDB(t *testing.T) *Store {
	t.Helper()
	raw := os.Getenv("PORTCULLIS_TEST_MYSQL_DSN")
	if raw == "" {
		t.Skip("PORTCULLIS_TEST_MYSQL_DSN not set; skipping this MySQL test")
	}
	cfg, err := gomysql.ParseDSN(raw)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), "mysql://"+cfg.FormatDSN(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := createLeaseTable(t.Context(), s.sqlDB); err != nil {
		t.Fatalf("connect (is PORTCULLIS_TEST_MYSQL_DSN reachable?): %v", err)
	}
	return s
}

// TestLeaseTakenOverByObservation: a lease whose holder died is taken over
// once it has gone unrenewed for a ttl by the waiter's own clock, however
// far in the future the holder's node's clock put its expiry (clock
// skew). Before, the waiter compared expires_at with its own node's NOW()
// and waited until then: with a holder clock an hour ahead, past its 60s
// wait.
func TestLeaseTakenOverByObservation(t *testing.T) {
	s := leaseDB(t)
	old := leaseTTL
	leaseTTL = 2 * time.Second
	defer func() { leaseTTL = old }()
	name := "test-takeover-" + time.Now().Format("150405.000000")
	if _, err := s.sqlDB.Exec("INSERT INTO "+leaseTable+" (name, owner, expires_at) VALUES (?, 'dead', NOW(6) + INTERVAL 1 HOUR)", name); err != nil {
		t.Fatal(err)
	}
	defer s.sqlDB.Exec("DELETE FROM "+leaseTable+" WHERE name = ?", name)
	start := time.Now()
	l, err := acquireLease(t.Context(), s.sqlDB, name, 8*time.Second)
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
	if took := time.Since(start); took < leaseTTL || took > leaseTTL+2*time.Second {
		t.Errorf("taken over after %s, want about the ttl (%s)", took, leaseTTL)
	}
	if err := l.release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseRenewedIsNotTakenOver: a live holder's renewals keep a waiter
// out for longer than the ttl, and a holder whose lease was taken over
// says so on release.
func TestLeaseRenewedIsNotTakenOver(t *testing.T) {
	s := leaseDB(t)
	old := leaseTTL
	leaseTTL = 1500 * time.Millisecond
	defer func() { leaseTTL = old }()
	name := "test-renewed-" + time.Now().Format("150405.000000")
	defer s.sqlDB.Exec("DELETE FROM "+leaseTable+" WHERE name = ?", name)
	holder, err := acquireLease(t.Context(), s.sqlDB, name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLease(t.Context(), s.sqlDB, name, 4*time.Second); err == nil {
		t.Fatal("a second process took a lease that its holder kept renewing")
	}
	// The holder stalls (renewals stop) and another takes over.
	close(holder.stop)
	<-holder.done
	holder.stop, holder.done = make(chan struct{}), make(chan struct{})
	other, err := acquireLease(t.Context(), s.sqlDB, name, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	go holder.renew()
	time.Sleep(leaseTTL/3 + 300*time.Millisecond)
	if err := holder.release(context.Background()); err == nil {
		t.Error("release of a lease taken over while held reported nothing")
	}
	if err := other.release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseReleasedBetweenInsertAndRead: a holder that releases the lease
// between a waiter's INSERT (which found the row) and its SELECT leaves
// the waiter no row to read; the waiter tries again and takes the lease.
// Before, Migrate failed with "sql: no rows in result set" (CI, three
// replicas migrating at once through three Galera nodes).
func TestLeaseReleasedBetweenInsertAndRead(t *testing.T) {
	s := leaseDB(t)
	name := "test-released-" + time.Now().Format("150405.000000")
	defer s.sqlDB.Exec("DELETE FROM "+leaseTable+" WHERE name = ?", name)
	l := &leaseLock{db: s.sqlDB, name: name, owner: "reader", ttl: leaseTTL}
	row, err := l.read(t.Context())
	if err != nil || row != (leaseRow{}) {
		t.Fatalf("read of a released lease = %+v, %v; want no row and no error", row, err)
	}
	got, err := acquireLease(t.Context(), s.sqlDB, name, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.release(context.Background()); err != nil {
		t.Fatal(err)
	}
}
