package storagetest

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// proofID returns a DPoP proof ID as package dpop derives one: the
// unpadded base64url SHA-256 of seed, 43 characters.
func proofID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// swapCase returns id with the case of every letter swapped.
func swapCase(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, id)
}

// testDPoPProofs checks the replay cache (dpop.ReplayCache): a proof ID is
// new once, IDs are compared byte for byte (base64url is case-sensitive),
// a malformed ID is refused, and DeleteExpired forgets expired proofs only.
func testDPoPProofs(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	now := time.Now().UTC()
	add := func(t *testing.T, id string, expires time.Time, want bool) {
		t.Helper()
		got, err := s.AddProof(ctx, id, expires)
		wantErr(t, "AddProof", err, nil)
		if got != want {
			t.Fatalf("AddProof(%s) = %v, want %v", id, got, want)
		}
	}

	t.Run("Replay", func(t *testing.T) {
		a, b := proofID("replay-a"), proofID("replay-b")
		add(t, a, now.Add(time.Minute), true)
		add(t, a, now.Add(time.Minute), false)
		add(t, a, now.Add(time.Hour), false) // another expiry changes nothing
		add(t, b, now.Add(time.Minute), true)
		add(t, b, now.Add(time.Minute), false)
	})

	t.Run("CaseSensitive", func(t *testing.T) {
		id := proofID("case")
		other := swapCase(id)
		if other == id {
			t.Fatalf("test ID %s has no letters", id)
		}
		add(t, id, now.Add(time.Minute), true)
		add(t, other, now.Add(time.Minute), true)
		add(t, other, now.Add(time.Minute), false)
	})

	t.Run("MalformedID", func(t *testing.T) {
		valid := proofID("malformed")
		for _, id := range []string{"", valid[:42], valid + "A", valid[:42] + "=", valid[:42] + "+", valid[:42] + " ", valid[:42] + "é"[:1]} {
			if ok, err := s.AddProof(ctx, id, now.Add(time.Minute)); err == nil || ok {
				t.Fatalf("AddProof(%q) = %v, %v; want an error", id, ok, err)
			}
		}
		// A refused ID is not recorded: its valid prefix is still new.
		add(t, valid, now.Add(time.Minute), true)
	})

	t.Run("DeleteExpired", func(t *testing.T) {
		s := open(t) // nothing else in it, so the count is the proofs'
		expired, live := proofID("expired"), proofID("live")
		for _, p := range []struct {
			id      string
			expires time.Time
		}{{expired, now.Add(-time.Second)}, {live, now.Add(time.Second)}} {
			if ok, err := s.AddProof(ctx, p.id, p.expires); err != nil || !ok {
				t.Fatalf("AddProof = %v, %v; want true", ok, err)
			}
		}
		n, err := s.DeleteExpired(ctx, now)
		wantErr(t, "delete expired", err, nil)
		if n != 1 {
			t.Fatalf("DeleteExpired removed %d rows, want 1 (the expired proof)", n)
		}
		// The expired proof is forgotten, the live one still a replay.
		for id, want := range map[string]bool{expired: true, live: false} {
			if ok, err := s.AddProof(ctx, id, now.Add(time.Minute)); err != nil || ok != want {
				t.Fatalf("AddProof after DeleteExpired = %v, %v; want %v", ok, err, want)
			}
		}
	})
}

// testDPoPProofRace adds one proof ID from many goroutines at once, five
// times over: exactly one call reports it new, the others a replay, none
// an error.
func testDPoPProofRace(t *testing.T, open Open) {
	s := open(t)
	checkProofRace(t, []Store{s}, 20)
}

// testReplicaDPoPProofRace is testDPoPProofRace with the calls spread over
// every replica (on a Galera cluster, through every node).
func testReplicaDPoPProofRace(t *testing.T, open OpenReplicas) {
	checkProofRace(t, open(t), 12)
}

// checkProofRace races n AddProof calls of one ID over rs, in five
// rounds: exactly one reports true, the rest false, none errs; every
// replica then reports the ID as a replay.
func checkProofRace(t *testing.T, rs []Store, n int) {
	t.Helper()
	ctx := ctxTimeout(t)
	expires := time.Now().Add(time.Minute)
	for round := range 5 {
		id := proofID(fmt.Sprintf("race-%d", round))
		checkOnce(t, rs, n, fmt.Sprintf("round %d: AddProof of one ID", round), func(s Store) (bool, error) {
			return s.AddProof(ctx, id, expires)
		})
		for ri, s := range rs {
			if ok, err := s.AddProof(ctx, id, expires); err != nil || ok {
				t.Fatalf("round %d: replica %d: AddProof after the race = %v, %v; want false (a replay)", round, ri, ok, err)
			}
		}
	}
}
