package keys_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/keys"
)

// twoAlgs are the options of a manager that signs with ES256 by default
// and keeps an RS256 key set beside it (RFC 9068 §2.1).
func twoAlgs(c *clock) keys.Options {
	o := opts(c, keys.ES256)
	o.Additional = []keys.Algorithm{keys.RS256}
	return o
}

// byAlg returns the stored keys of alg, ascending by generation.
func byAlg(t *testing.T, store keys.Store, alg keys.Algorithm) []keys.Record {
	t.Helper()
	recs, err := store.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []keys.Record
	for _, r := range recs {
		if r.Algorithm == alg {
			out = append(out, r)
		}
	}
	return out
}

// TestTwoAlgorithmsLifecycle: "RFC 9068 §2.1 RS256 beside ES256": both key
// sets are created at start, published in one JWKS, sign independently,
// rotate on the same pre-published schedule, and retire and expire only
// their own keys. (Before: one key set; an RS256 key would have retired
// the ES256 one.)
func TestTwoAlgorithmsLifecycle(t *testing.T) {
	c := newClock()
	store := openStore(t)
	m := started(t, store, sealer(t, secret(t)), twoAlgs(c))
	ctx := t.Context()

	if got := m.Algorithms(); !slices.Equal(got, []keys.Algorithm{keys.ES256, keys.RS256}) {
		t.Fatalf("Algorithms = %v", got)
	}
	es, err := m.SigningKey()
	if err != nil || es.Algorithm != keys.ES256 {
		t.Fatalf("default signing key = %v, %v; want ES256", es, err)
	}
	rs, err := m.SigningKeyFor(keys.RS256)
	if err != nil || rs.Algorithm != keys.RS256 {
		t.Fatalf("RS256 signing key = %v, %v", rs, err)
	}
	if _, err := m.SigningKeyFor(keys.EdDSA); err == nil {
		t.Fatal("SigningKeyFor(EdDSA) succeeded on a manager without EdDSA keys")
	}
	if ids, _ := jwks(t, m); !slices.Contains(ids, es.ID) || !slices.Contains(ids, rs.ID) || len(ids) != 2 {
		t.Fatalf("JWKS = %v, want both %s and %s", ids, es.ID, rs.ID)
	}

	// The scheduled rotation is due for both at once: each algorithm gets a
	// pre-published successor; neither signs before its activation.
	c.advance(30*24*time.Hour - time.Hour)
	for range 2 {
		if err := m.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	esKeys, rsKeys := byAlg(t, store, keys.ES256), byAlg(t, store, keys.RS256)
	if len(esKeys) != 2 || len(rsKeys) != 2 {
		t.Fatalf("after the scheduled rotation: %d ES256 and %d RS256 keys, want 2 and 2", len(esKeys), len(rsKeys))
	}
	for _, ks := range [][]keys.Record{esKeys, rsKeys} {
		if !ks[1].ActivatesAt.Equal(ks[0].RetiredAt) || !ks[1].ActivatesAt.After(c.now()) {
			t.Fatalf("%s: successor activates %v, predecessor retires %v (now %v)", ks[0].Algorithm, ks[1].ActivatesAt, ks[0].RetiredAt, c.now())
		}
	}
	if k, _ := m.SigningKey(); k.ID != es.ID {
		t.Fatal("ES256 successor signs before its activation")
	}
	if k, _ := m.SigningKeyFor(keys.RS256); k.ID != rs.ID {
		t.Fatal("RS256 successor signs before its activation")
	}
	if ids, _ := jwks(t, m); len(ids) != 4 {
		t.Fatalf("JWKS during pre-publication = %v, want 4 keys", ids)
	}

	// Activation, then expiry of both predecessors.
	c.advance(time.Hour + time.Second)
	if k, _ := m.SigningKey(); k.ID != esKeys[1].ID {
		t.Fatalf("ES256 signs with %s after activation, want %s", k.ID, esKeys[1].ID)
	}
	if k, _ := m.SigningKeyFor(keys.RS256); k.ID != rsKeys[1].ID {
		t.Fatalf("RS256 signs with %s after activation, want %s", k.ID, rsKeys[1].ID)
	}
	c.advance(21 * time.Minute)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	ids, _ := jwks(t, m)
	slices.Sort(ids)
	want := []string{esKeys[1].ID, rsKeys[1].ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("JWKS after retention = %v, want %v", ids, want)
	}

	// An immediate (compromise) rotation replaces both at once.
	k, err := m.Rotate(ctx, 0)
	if err != nil || k.Algorithm != keys.ES256 {
		t.Fatalf("Rotate = %v, %v; want the new ES256 key", k, err)
	}
	if rsNow, _ := m.SigningKeyFor(keys.RS256); rsNow.ID == rsKeys[1].ID {
		t.Fatal("immediate rotation left the RS256 key signing")
	}

	// A pre-published manual rotation: both successors activate at the
	// same instant, however long the RSA key took to generate.
	c.advance(time.Hour)
	if _, err := m.Rotate(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	esKeys, rsKeys = byAlg(t, store, keys.ES256), byAlg(t, store, keys.RS256)
	if a, b := esKeys[len(esKeys)-1].ActivatesAt, rsKeys[len(rsKeys)-1].ActivatesAt; !a.Equal(b) {
		t.Fatalf("ES256 successor activates %v, RS256 %v; want one instant", a, b)
	}
}

// TestTwoAlgorithmsReplicasRace: "RFC 9068 §2.1 replicas racing": four
// replicas start together on an empty table and then run a due scheduled
// rotation together; exactly one key per algorithm is created each time,
// and all replicas sign with the same keys. Generations stay unique across
// algorithms, so every insert is a compare-and-set on the whole table.
func TestTwoAlgorithmsReplicasRace(t *testing.T) {
	c := newClock()
	store := openStore(t)
	sk := secret(t)
	ctx := t.Context()
	var ms []*keys.Manager
	for range 4 {
		ms = append(ms, keys.NewManager(store, sealer(t, sk), twoAlgs(c)))
	}
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			if err := m.Init(ctx); err != nil {
				t.Errorf("Init: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if es, rs := byAlg(t, store, keys.ES256), byAlg(t, store, keys.RS256); len(es) != 1 || len(rs) != 1 {
		t.Fatalf("replicas started together created %d ES256 and %d RS256 keys, want 1 and 1", len(es), len(rs))
	}
	for _, m := range ms {
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}

	c.advance(30 * 24 * time.Hour)
	// A tick that loses a compare-and-set gives up until the next one;
	// three rounds of concurrent ticks settle every rotation.
	for range 3 {
		for _, m := range ms {
			wg.Go(func() {
				if err := m.Tick(ctx); err != nil {
					t.Errorf("tick: %v", err)
				}
			})
		}
		wg.Wait()
	}
	es, rs := byAlg(t, store, keys.ES256), byAlg(t, store, keys.RS256)
	if len(es) != 2 || len(rs) != 2 {
		t.Fatalf("after concurrent scheduled rotations: %d ES256 and %d RS256 keys, want 2 and 2", len(es), len(rs))
	}
	c.advance(time.Hour + time.Second)
	for _, m := range ms {
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		e, _ := m.SigningKey()
		r, _ := m.SigningKeyFor(keys.RS256)
		if e.ID != es[1].ID || r.ID != rs[1].ID {
			t.Fatalf("a replica signs with %s/%s, want %s/%s", e.ID, r.ID, es[1].ID, rs[1].ID)
		}
	}
}

// TestDefaultAlgorithmSwitch: after keys.algorithm changes from EdDSA to
// ES256, the EdDSA key never signs again, stays published for the
// retention (tokens it signed before the switch still verify), and is then
// removed; the ES256 and RS256 keys are untouched.
func TestDefaultAlgorithmSwitch(t *testing.T) {
	c := newClock()
	store := openStore(t)
	sk := secret(t)
	o := opts(c, keys.EdDSA)
	o.Additional = []keys.Algorithm{keys.ES256, keys.RS256}
	old := started(t, store, sealer(t, sk), o)
	ed, _ := old.SigningKey()
	if ed.Algorithm != keys.EdDSA {
		t.Fatalf("default key %s", ed.Algorithm)
	}
	c.advance(time.Hour)
	m := started(t, store, sealer(t, sk), twoAlgs(c))
	if k, _ := m.SigningKey(); k.Algorithm != keys.ES256 {
		t.Fatalf("after the switch the default key is %s", k.Algorithm)
	}
	if ids, _ := jwks(t, m); !slices.Contains(ids, ed.ID) || len(ids) != 3 {
		t.Fatalf("JWKS right after the switch = %v, want the EdDSA key still published", ids)
	}
	c.advance(21 * time.Minute)
	if err := m.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ids, _ := jwks(t, m); slices.Contains(ids, ed.ID) || len(ids) != 2 {
		t.Fatalf("JWKS after retention = %v, want the EdDSA key gone", ids)
	}
	if left := byAlg(t, store, keys.EdDSA); len(left) != 0 {
		t.Fatalf("EdDSA key still stored: %v", left)
	}
}
