package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// failoverDSN returns the test's MySQL DSN (a fresh database) with its
// one host replaced by the list addrs.
func failoverDSN(t *testing.T, addrs ...string) string {
	t.Helper()
	dsn := storagetest.MySQLDSN(t) // mysql://root:@tcp(127.0.0.1:3306)/db?parseTime=true
	d, err := storage.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, a := range addrs {
		list = append(list, "tcp("+a+")")
	}
	out := strings.Replace(dsn, "tcp("+d.MySQL.Addr+")", strings.Join(list, ","), 1)
	if out == dsn {
		t.Fatalf("cannot replace the host of %s", storage.RedactDSN(dsn))
	}
	return out
}

// newTestUser returns a user with a unique name.
func newTestUser() *identity.User {
	now := time.Now()
	return &identity.User{ID: uuid.NewString(), Username: "u-" + uuid.NewString()[:13],
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", CreatedAt: now, UpdatedAt: now}
}

// TestMySQLFailoverDSN runs a store on a DSN listing two routes to the
// test's MySQL server, each through a fault proxy, and breaks the first:
// a crash (connections reset, new ones refused) costs no call at all; a
// hang costs one call, cut off by the query timeout, after which the
// connections to the hung host are dropped and new ones go to the second;
// a host that hangs while connecting costs the per-host dial timeout; and
// with every host down, calls fail at once as unavailable.
func TestMySQLFailoverDSN(t *testing.T) {
	storagetest.RequireMySQL(t)
	const queryTimeout = time.Second
	opts := storage.Options{QueryTimeout: queryTimeout}
	warm := func(t *testing.T, s *storage.Store) {
		t.Helper()
		// Concurrent calls leave several pooled connections.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := s.CreateUser(t.Context(), newTestUser()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	// calls makes n calls one after the other and returns how many failed,
	// failing the test for an error that is not apperr.ErrUnavailable or
	// a call slower than limit.
	calls := func(t *testing.T, s *storage.Store, n int, limit time.Duration) (failed int) {
		t.Helper()
		for i := range n {
			start := time.Now()
			var err error
			if i%2 == 0 {
				err = s.CreateUser(t.Context(), newTestUser())
			} else {
				_, err = s.ListUsers(t.Context())
			}
			took := time.Since(start)
			if err != nil {
				failed++
				if !errors.Is(err, apperr.ErrUnavailable) {
					t.Errorf("call %d: %v: not unavailable", i, err)
				}
			}
			if took > limit {
				t.Errorf("call %d took %v, want at most %v", i, took.Round(time.Millisecond), limit)
			}
		}
		return failed
	}

	t.Run("crash", func(t *testing.T) {
		a, b := storagetest.NewFaultProxy(t, "127.0.0.1:3306"), storagetest.NewFaultProxy(t, "127.0.0.1:3306")
		s := storagetest.OpenDSN(t, failoverDSN(t, a.Addr(), b.Addr()), opts)
		warm(t, s)
		a.SetCut(true)
		start := time.Now()
		// At most the first call may fail: one whose statement went out on
		// a pooled connection before the driver could see the connection
		// closed (its read then fails: the write may have run, so it is not
		// rerun). Every call after it goes to the second host.
		if failed := calls(t, s, 20, queryTimeout); failed > 1 {
			t.Errorf("%d of 20 calls failed after the first host crashed; want at most 1", failed)
		}
		t.Logf("20 calls after the first host crashed: %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("hang", func(t *testing.T) {
		a, b := storagetest.NewFaultProxy(t, "127.0.0.1:3306"), storagetest.NewFaultProxy(t, "127.0.0.1:3306")
		s := storagetest.OpenDSN(t, failoverDSN(t, a.Addr(), b.Addr()), opts)
		warm(t, s)
		a.SetHung(true)
		start := time.Now()
		if failed := calls(t, s, 20, queryTimeout+500*time.Millisecond); failed > 1 {
			t.Errorf("%d of 20 calls failed after the first host hung; want at most 1 (the one on a pooled connection)", failed)
		}
		t.Logf("20 calls after the first host hung: %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("hang while connecting", func(t *testing.T) {
		silent, b := storagetest.NewFaultProxy(t, ""), storagetest.NewFaultProxy(t, "127.0.0.1:3306")
		dsn := failoverDSN(t, b.Addr())
		// Migrate through b alone, then open with the silent server first.
		storagetest.OpenDSN(t, dsn, opts)
		s, err := storage.Open(t.Context(), strings.Replace(dsn, "tcp("+b.Addr()+")", "tcp("+silent.Addr()+"),tcp("+b.Addr()+")", 1), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now()
		if failed := calls(t, s, 5, queryTimeout); failed != 0 {
			t.Errorf("%d of 5 calls failed with a silent first host; want 0", failed)
		}
		t.Logf("5 calls with a silent first host: %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("every host down", func(t *testing.T) {
		a, b := storagetest.NewFaultProxy(t, "127.0.0.1:3306"), storagetest.NewFaultProxy(t, "127.0.0.1:3306")
		s := storagetest.OpenDSN(t, failoverDSN(t, a.Addr(), b.Addr()), opts)
		a.SetCut(true)
		b.SetCut(true)
		if failed := calls(t, s, 4, queryTimeout); failed != 4 {
			t.Errorf("%d of 4 calls failed with every host down; want 4", failed)
		}
		if err := s.Ping(t.Context()); !errors.Is(err, apperr.ErrUnavailable) {
			t.Errorf("Ping = %v, want unavailable", err)
		}
		b.SetCut(false)
		if failed := calls(t, s, 4, queryTimeout); failed != 0 {
			t.Errorf("%d of 4 calls failed once the second host was back; want 0", failed)
		}
	})
}

// TestGaleraFailoverDSN runs a store on a DSN listing the three nodes of
// a Galera cluster, node 3 first, under a steady load of writes and
// reads, and makes node 3 unusable: rejecting queries (error 1047 on
// every pooled connection), where no call may fail (the refused
// statements run again on connections to node 1); then killed, where the
// calls in flight on node 3 and those that outlast the query timeout
// (2s) while the cluster evicts node 3 may fail, but only as
// unavailable.
func TestGaleraFailoverDSN(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	dsn := "mysql://root:@" + fmt.Sprintf("tcp(%s),tcp(%s),tcp(%s)", g.Nodes[2].Addr(), g.Nodes[0].Addr(), g.Nodes[1].Addr()) + "/" + db + "?parseTime=true"
	s := storagetest.OpenDSN(t, dsn, storage.Options{QueryTimeout: 2 * time.Second})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !s.Galera() {
		t.Fatal("the store does not see a Galera node")
	}

	type result struct {
		ok, failed int
		errs       []error
	}
	load := func(t *testing.T, phase func(), after time.Duration) result {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		var mu sync.Mutex
		var r result
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					var err error
					if (i+w)%2 == 0 {
						err = s.CreateUser(ctx, newTestUser())
					} else {
						_, err = s.ListUsers(ctx)
					}
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					if err != nil {
						r.failed++
						if len(r.errs) < 5 {
							r.errs = append(r.errs, err)
						}
					} else {
						r.ok++
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(500 * time.Millisecond)
		phase()
		time.Sleep(after)
		cancel()
		wg.Wait()
		return r
	}

	t.Run("node 3 rejects queries", func(t *testing.T) {
		r := load(t, func() { g.Nodes[2].Exec("SET GLOBAL wsrep_reject_queries = ALL") }, 2*time.Second)
		t.Logf("%d calls succeeded, %d failed", r.ok, r.failed)
		if r.failed != 0 || r.ok == 0 {
			t.Errorf("%d calls failed (%v), %d succeeded; want none failed", r.failed, r.errs, r.ok)
		}
		g.Nodes[2].Exec("SET GLOBAL wsrep_reject_queries = NONE")
	})

	t.Run("node 3 killed", func(t *testing.T) {
		r := load(t, func() { g.Nodes[2].Stop(syscall.SIGKILL) }, 8*time.Second)
		t.Logf("%d calls succeeded, %d failed", r.ok, r.failed)
		if r.ok == 0 {
			t.Error("no call succeeded")
		}
		for _, err := range r.errs {
			if !errors.Is(err, apperr.ErrUnavailable) {
				t.Errorf("%v: not unavailable", err)
			}
		}
	})
}
