package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// TestGaleraFailedCommitDiscardsConnection: a COMMIT that a Galera node
// refuses (1047, as while it shuts down) leaves the transaction open on
// its connection. That connection must not go back to the pool: before,
// the next transaction on it failed with "Error 1568: Transaction
// characteristics can't be changed while a transaction is in progress",
// a 500 (seen in TestGaleraNodeDeath/SIGTERM).
func TestGaleraFailedCommitDiscardsConnection(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	storagetest.OpenDSN(t, g.Nodes[0].DSN(db)) // migrates
	n := g.Nodes[1]
	s := storagetest.OpenDSN(t, n.DSN(db), storage.Options{MaxOpenConns: 1})
	ctx := t.Context()
	newUser := func() *identity.User {
		return &identity.User{ID: uuid.NewString(), Username: "u-" + uuid.NewString()[:8],
			PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	}
	for round := range 3 {
		tx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(tx, newUser()); err != nil {
			t.Fatal(err)
		}
		n.Exec("SET GLOBAL wsrep_reject_queries = ALL")
		commitErr := s.Commit(tx)
		n.Exec("SET GLOBAL wsrep_reject_queries = NONE")
		if commitErr == nil {
			t.Fatalf("round %d: commit succeeded on a node rejecting queries", round)
		}
		_ = s.Rollback(tx)
		// The one pooled connection is used next.
		err = s.InTx(ctx, func(ctx context.Context) error { return s.CreateUser(ctx, newUser()) })
		if err != nil && strings.Contains(err.Error(), "1568") {
			t.Fatalf("round %d: the connection of the failed commit was reused: %v", round, err)
		}
		if err != nil {
			t.Fatalf("round %d: transaction after a failed commit: %v", round, err)
		}
	}
}
