package keys_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/seal"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/storage"
)

// clock is a settable time source shared by managers in one test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.set(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func openStore(t testing.TB) *storage.Store {
	t.Helper()
	s, err := storage.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "keys.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func secret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, seal.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sealer(t testing.TB, primary []byte, old ...[]byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(primary, old...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts(c *clock, alg keys.Algorithm) keys.Options {
	return keys.Options{
		Algorithm: alg, RotationInterval: 30 * 24 * time.Hour, Prepublication: time.Hour,
		ReloadInterval: time.Second, JWKSMaxAge: 10 * time.Minute, Retention: 20 * time.Minute, Now: c.now,
	}
}

// started returns an initialised manager over store.
func started(t testing.TB, store keys.Store, sl *seal.Sealer, o keys.Options) *keys.Manager {
	t.Helper()
	m := keys.NewManager(store, sl, o)
	if err := m.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAlgorithms signs with each algorithm and verifies with the public JWK
// as a resource server would.
func TestAlgorithms(t *testing.T) {
	for _, alg := range []keys.Algorithm{keys.ES256, keys.RS256, keys.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			m := started(t, openStore(t), sealer(t, secret(t)), opts(newClock(), alg))
			k, err := m.SigningKey()
			if err != nil {
				t.Fatal(err)
			}
			token, err := k.Sign([]byte(`{"sub":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			obj, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := obj.Signatures[0].Protected
			if h.KeyID != k.ID || h.Algorithm != string(alg) || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
				t.Errorf("header = %+v", h)
			}
			if _, err := obj.Verify(k.Public.Key); err != nil {
				t.Errorf("verify: %v", err)
			}
			if k.Public.Algorithm != string(alg) || k.Public.Use != "sig" || !k.Public.IsPublic() {
				t.Errorf("public JWK = %+v", k.Public)
			}
		})
	}
}

func jwks(t *testing.T, m *keys.Manager) (ids []string, doc keys.JWKS) {
	t.Helper()
	doc = m.JWKS()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc.Body, &set); err != nil {
		t.Fatalf("JWKS %s: %v", doc.Body, err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Algorithm == "" || k.Use != "sig" {
			t.Errorf("JWKS key %s: public=%v alg=%q use=%q", k.KeyID, k.IsPublic(), k.Algorithm, k.Use)
		}
		ids = append(ids, k.KeyID)
	}
	return ids, doc
}

func TestLifecycle(t *testing.T) {
	c := newClock()
	store := openStore(t)
	m := started(t, store, sealer(t, secret(t)), opts(c, keys.ES256))
	ctx := t.Context()
	first, _ := m.SigningKey()

	// Pre-publication: the new key is in the JWKS but does not sign yet.
	next, err := m.Rotate(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := m.SigningKey(); k.ID != first.ID {
		t.Fatalf("signing with %s before activation", k.ID)
	}
	ids, doc := jwks(t, m)
	if strings.Join(ids, ",") != first.ID+","+next.ID {
		t.Fatalf("JWKS during pre-publication = %v", ids)
	}
	if doc.MaxAge != 10*time.Minute {
		t.Errorf("JWKS max age = %v, want the default 10m", doc.MaxAge)
	}
	states := func() map[string]keys.State {
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]keys.State{}
		for _, s := range st {
			out[s.ID] = s.State
		}
		return out
	}
	if s := states(); s[first.ID] != keys.StateActive || s[next.ID] != keys.StatePublished {
		t.Fatalf("states = %v", s)
	}

	// Activation: the new key signs, the old one is retired but published.
	c.advance(time.Hour + time.Second)
	if k, _ := m.SigningKey(); k.ID != next.ID {
		t.Fatalf("signing with %s after activation, want %s", k.ID, next.ID)
	}
	if s := states(); s[first.ID] != keys.StateRetired || s[next.ID] != keys.StateActive {
		t.Fatalf("states = %v", s)
	}
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, _ := jwks(t, m); len(ids) != 2 {
		t.Fatalf("retired key dropped too early: %v", ids)
	}
	if _, ok := m.Lookup(first.ID); !ok {
		t.Fatal("retired key no longer verifiable")
	}

	// Expiry: past retention the retired key leaves the JWKS and the table.
	c.advance(21 * time.Minute)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, _ := jwks(t, m); len(ids) != 1 || ids[0] != next.ID {
		t.Fatalf("JWKS after retention = %v", ids)
	}
	if _, ok := m.Lookup(first.ID); ok {
		t.Fatal("expired key still loaded")
	}
}

func TestJWKSETag(t *testing.T) {
	m := started(t, openStore(t), sealer(t, secret(t)), opts(newClock(), keys.ES256))
	_, doc := jwks(t, m)
	if len(doc.ETag) < 3 || doc.ETag[0] != '"' {
		t.Fatalf("ETag %q is not a strong entity-tag", doc.ETag)
	}
	if _, doc2 := jwks(t, m); doc2.ETag != doc.ETag {
		t.Fatal("ETag changed without a change of keys")
	}
	if _, err := m.Rotate(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if _, doc2 := jwks(t, m); doc2.ETag == doc.ETag {
		t.Fatal("ETag unchanged after rotation")
	}
}

// TestReplicas: a second replica uses the first one's key, and when both
// run a due scheduled rotation at once exactly one new key is created.
func TestReplicas(t *testing.T) {
	c := newClock()
	store := openStore(t)
	sk := secret(t)
	a := keys.NewManager(store, sealer(t, sk), opts(c, keys.ES256))
	b := keys.NewManager(store, sealer(t, sk), opts(c, keys.ES256))
	ctx := t.Context()
	if err := a.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Init(ctx); err != nil {
		t.Fatal(err)
	}
	ka, _ := a.SigningKey()
	kb, _ := b.SigningKey()
	if ka.ID != kb.ID {
		t.Fatalf("replicas sign with different keys: %s and %s", ka.ID, kb.ID)
	}
	c.advance(30 * 24 * time.Hour)
	var wg sync.WaitGroup
	for _, m := range []*keys.Manager{a, b, a, b} {
		wg.Go(func() {
			if err := m.Tick(ctx); err != nil {
				t.Errorf("tick: %v", err)
			}
		})
	}
	wg.Wait()
	recs, err := store.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Generation != 2 {
		t.Fatalf("after concurrent scheduled rotation: %d keys", len(recs))
	}
	// Both replicas switch at the activation time, not before.
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Hour + time.Second)
	na, _ := a.SigningKey()
	nb, _ := b.SigningKey()
	if na.ID != recs[1].ID || nb.ID != recs[1].ID {
		t.Fatalf("after activation replicas sign with %s and %s, want %s", na.ID, nb.ID, recs[1].ID)
	}
	// The compare-and-set itself: a duplicate generation is refused.
	dup := recs[1]
	dup.ID = "other"
	if err := store.CreateKey(ctx, dup, c.now()); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Fatalf("duplicate generation: %v", err)
	}
}

func TestWrongSecretsKeyAndRewrap(t *testing.T) {
	c := newClock()
	store := openStore(t)
	oldKey, newKey := secret(t), secret(t)
	ctx := t.Context()
	m := started(t, store, sealer(t, oldKey), opts(c, keys.ES256))
	if _, err := m.Rotate(ctx, 0); err != nil {
		t.Fatal(err)
	}

	wrong := keys.NewManager(store, sealer(t, newKey), opts(c, keys.ES256))
	if err := wrong.Init(ctx); !errors.Is(err, keys.ErrWrongSecretsKey) {
		t.Fatalf("Init with the wrong secrets key: %v", err)
	}

	n, err := keys.Rewrap(ctx, store, sealer(t, newKey, oldKey), keys.RewrapOptions{})
	if err != nil || n != 2 {
		t.Fatalf("Rewrap = %d, %v", n, err)
	}
	if n, err := keys.Rewrap(ctx, store, sealer(t, newKey, oldKey), keys.RewrapOptions{}); err != nil || n != 0 {
		t.Fatalf("second Rewrap = %d, %v", n, err)
	}
	after := keys.NewManager(store, sealer(t, newKey), opts(c, keys.ES256))
	if err := after.Init(ctx); err != nil {
		t.Fatalf("Init with the new secrets key after rewrap: %v", err)
	}
	if err := keys.NewManager(store, sealer(t, oldKey), opts(c, keys.ES256)).Init(ctx); !errors.Is(err, keys.ErrWrongSecretsKey) {
		t.Fatalf("old key still opens after rewrap: %v", err)
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range []keys.Algorithm{keys.ES256, keys.RS256, keys.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			s := openStore(b)
			m := keys.NewManager(s, sealer(b, make([]byte, 32)), keys.Options{Algorithm: alg})
			if err := m.Init(context.Background()); err != nil {
				b.Fatal(err)
			}
			k, _ := m.SigningKey()
			payload := []byte(`{"iss":"http://localhost:8080","sub":"6b1f7c2e-0d3a-4c1e-9a59-0c6f1e2b7d11","aud":["http://localhost:8090"],"exp":1895766743,"iat":1795766143,"nbf":1795766143,"jti":"6a69608a-34c2-4e7c-8022-e4da44967d91","client_id":"app","scope":"read write","preferred_username":"alice","roles":["user"]}`)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Sign(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestImmediateRotationDuringPrepublication: a key rotated out at once
// while a pre-published rotation is pending is retired now, not when the
// pending key would have activated.
func TestImmediateRotationDuringPrepublication(t *testing.T) {
	c := newClock()
	store := openStore(t)
	m := started(t, store, sealer(t, secret(t)), opts(c, keys.ES256))
	ctx := t.Context()
	first, _ := m.SigningKey()
	pending, err := m.Rotate(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c.advance(time.Minute)
	now, err := m.Rotate(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := m.SigningKey(); k.ID != now.ID {
		t.Fatalf("signing with %s, want the immediate key %s", k.ID, now.ID)
	}
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.ID == first.ID || s.ID == pending.ID {
			if s.RetiredAt == nil || !s.RetiredAt.Equal(c.now().Truncate(time.Second)) {
				t.Errorf("key %s retired at %v, want now (%v)", s.ID, s.RetiredAt, c.now())
			}
		}
	}
	// Past retention (20 min) both old keys leave the JWKS.
	c.advance(21 * time.Minute)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, _ := jwks(t, m); len(ids) != 1 || ids[0] != now.ID {
		t.Fatalf("JWKS = %v, want only %s", ids, now.ID)
	}
}

// racingStore lets another replica create the first key right after the
// manager's initial (empty) read of the key table.
type racingStore struct {
	keys.Store
	lists int
	race  func()
}

func (s *racingStore) ListKeys(ctx context.Context) ([]keys.Record, error) {
	s.lists++
	if s.lists == 2 && s.race != nil {
		s.race()
	}
	return s.Store.ListKeys(ctx)
}

// TestInitLosesFirstKeyRace: two replicas start on an empty key table;
// the one that loses the race for the first key must adopt the winner's
// key, not create generation 2 and retire it at once. (Before: CI saw
// "replicas started together created 2 keys, want 1".)
func TestInitLosesFirstKeyRace(t *testing.T) {
	c := newClock()
	store := openStore(t)
	sl := sealer(t, secret(t))
	winner := keys.NewManager(store, sl, opts(c, keys.ES256))
	rs := &racingStore{Store: store, race: func() {
		if err := winner.Init(t.Context()); err != nil {
			t.Errorf("winner Init: %v", err)
		}
	}}
	loser := keys.NewManager(rs, sl, opts(c, keys.ES256))
	if err := loser.Init(t.Context()); err != nil {
		t.Fatalf("loser Init: %v", err)
	}
	recs, err := store.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d keys after the race, want 1: %+v", len(recs), recs)
	}
	a, _ := winner.SigningKey()
	b, _ := loser.SigningKey()
	if a == nil || b == nil || a.ID != b.ID {
		t.Fatalf("replicas sign with different keys: %v vs %v", a, b)
	}
}

// blockingReader blocks every Read until release is closed, after telling
// reading once.
type blockingReader struct {
	reading chan struct{}
	release chan struct{}
	once    sync.Once
}

func (r *blockingReader) Read(p []byte) (int, error) {
	r.once.Do(func() { close(r.reading) })
	<-r.release
	return rand.Read(p)
}

// TestRotateGeneratesOutsideLock: while a rotation is generating its key
// (an RSA key takes up to a second), Reload, and so the Run loop, does not
// wait for it; the rotation still inserts the generation it chose.
// (EdDSA, since ed25519 is the generator that still reads Options.Rand.)
func TestRotateGeneratesOutsideLock(t *testing.T) {
	c := newClock()
	store := openStore(t)
	sl := sealer(t, secret(t))
	started(t, store, sl, opts(c, keys.EdDSA)) // the first key, generated normally
	rnd := &blockingReader{reading: make(chan struct{}), release: make(chan struct{})}
	o := opts(c, keys.EdDSA)
	o.Rand = rnd
	m := keys.NewManager(store, sl, o)
	if err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	rotated := make(chan error, 1)
	go func() {
		_, err := m.Rotate(t.Context(), 0)
		rotated <- err
	}()
	select {
	case <-rnd.reading:
	case err := <-rotated:
		t.Fatalf("Rotate returned before generating a key: %v", err)
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- m.Reload(t.Context()) }()
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(rnd.release)
		t.Fatal("Reload waited for the key generation of a rotation")
	}
	close(rnd.release)
	if err := <-rotated; err != nil {
		t.Fatal(err)
	}
	recs, err := store.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Generation != 2 {
		t.Fatalf("keys after the rotation: %+v, want generations 1 and 2", recs)
	}
}
