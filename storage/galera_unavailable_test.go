package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// TestGaleraNodeNotReadyIsUnavailable: a Galera node that refuses
// queries, first by wsrep_reject_queries and then because it has lost the
// primary component (the other two nodes were killed), makes every store
// call fail with an error matching apperr.ErrUnavailable (503 with
// Retry-After), never one that the HTTP layer turns into a 500 or, for a
// refresh, into invalid_grant. The MySQL error numbers seen are logged.
func TestGaleraNodeNotReadyIsUnavailable(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	storagetest.OpenDSN(t, g.Nodes[0].DSN(db)) // migrates
	s := storagetest.OpenDSN(t, g.Nodes[2].DSN(db), storage.Options{QueryTimeout: 2 * time.Second})
	ctx := t.Context()
	u := &identity.User{ID: uuid.NewString(), Username: "nora", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA",
		CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}

	calls := []struct {
		name   string
		fosite bool // a fosite storage method (wrapFosite)
		call   func(ctx context.Context) error
	}{
		{"Ping", false, s.Ping},
		{"GetUserByUsername", false, func(ctx context.Context) error { _, err := s.GetUserByUsername(ctx, "nora"); return err }},
		{"CreateUser", false, func(ctx context.Context) error {
			return s.CreateUser(ctx, &identity.User{ID: uuid.NewString(), Username: "new-" + uuid.NewString()[:8],
				PasswordHash: u.PasswordHash, CreatedAt: time.Now(), UpdatedAt: time.Now()})
		}},
		{"LockUser in InTx", false, func(ctx context.Context) error {
			return s.InTx(ctx, func(ctx context.Context) error { _, err := s.LockUser(ctx, u.ID); return err })
		}},
		{"GetClient", true, func(ctx context.Context) error { _, err := s.GetClient(ctx, "no-such-client"); return err }},
		{"GetRefreshTokenSession", true, func(ctx context.Context) error {
			_, err := s.GetRefreshTokenSession(ctx, "no-such-signature", oauth.NewSession())
			return err
		}},
		{"RotateRefreshToken", true, func(ctx context.Context) error { return s.RotateRefreshToken(ctx, "no-such-request", "sig") }},
		{"AddProof", false, func(ctx context.Context) error {
			_, err := s.AddProof(ctx, newProofID(), time.Now().Add(time.Minute))
			return err
		}},
	}
	seen := map[string][]uint16{}
	check := func(t *testing.T, phase string) {
		t.Helper()
		for _, c := range calls {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			err := c.call(cctx)
			took := time.Since(start)
			cancel()
			if me, ok := errors.AsType[*gomysql.MySQLError](err); ok && !slices.Contains(seen[phase], me.Number) {
				seen[phase] = append(seen[phase], me.Number)
			}
			switch {
			case err == nil:
				t.Errorf("%s: %s succeeded on a node that refuses queries", phase, c.name)
			case !errors.Is(err, apperr.ErrUnavailable):
				t.Errorf("%s: %s: %v: does not match apperr.ErrUnavailable (would not be a 503)", phase, c.name, err)
			case c.fosite && (errors.Is(err, fosite.ErrSerializationFailure) || errors.Is(err, fosite.ErrNotFound)):
				t.Errorf("%s: %s: %v: a fosite method reports a conflict or not-found (a refresh would get invalid_grant)", phase, c.name, err)
			}
			if took > 5*time.Second {
				t.Errorf("%s: %s took %v", phase, c.name, took.Round(time.Millisecond))
			}
		}
	}

	t.Run("wsrep_reject_queries", func(t *testing.T) {
		g.Nodes[2].Exec("SET GLOBAL wsrep_reject_queries = ALL")
		defer g.Nodes[2].Exec("SET GLOBAL wsrep_reject_queries = NONE")
		check(t, "wsrep_reject_queries=ALL")
	})
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("node 3 does not answer again after wsrep_reject_queries=NONE: %v", err)
	}

	t.Run("non-primary", func(t *testing.T) {
		g.Nodes[0].Stop(syscall.SIGKILL)
		g.Nodes[1].Stop(syscall.SIGKILL)
		waitClusterStatus(t, g.Nodes[2], db, "non-Primary", 30*time.Second)
		check(t, "non-primary")
	})
	for _, phase := range []string{"wsrep_reject_queries=ALL", "non-primary"} {
		t.Logf("%s: MySQL error numbers seen: %v", phase, seen[phase])
	}
}

// waitClusterStatus waits until node reports wsrep_cluster_status want.
// It asks with SHOW STATUS, which a node outside the primary component
// still answers (a SELECT waits for causal reads and fails there).
func waitClusterStatus(t *testing.T, node *testkit.GaleraNode, db, want string, timeout time.Duration) {
	t.Helper()
	conn, err := gomysql.NewConnector(node.Config(db))
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(conn)
	defer pool.Close()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var name, v string
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := pool.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'").Scan(&name, &v)
		cancel()
		if err == nil && v == want {
			return
		}
		last = fmt.Sprintf("%q %v", v, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: wsrep_cluster_status not %q after %v (last %s)", node.Name, want, timeout, last)
}
