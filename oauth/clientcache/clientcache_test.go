package clientcache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clientcache"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// source is a client store that counts reads and can hold one until
// released.
type source struct {
	mu      sync.Mutex
	clients map[string]*clients.Client
	reads   atomic.Int64
	// hold, when set, is closed by the test to let a read that has
	// signalled on reading finish.
	hold    chan struct{}
	reading chan struct{}
}

func newSource(cs ...*clients.Client) *source {
	s := &source{clients: map[string]*clients.Client{}}
	for _, c := range cs {
		s.clients[c.ID] = c
	}
	return s
}

func (s *source) set(c *clients.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = c
}

func (s *source) load(_ context.Context, id string) (*clients.Client, error) {
	s.reads.Add(1)
	s.mu.Lock()
	c, ok := s.clients[id]
	hold, reading := s.hold, s.reading
	s.mu.Unlock()
	if reading != nil {
		reading <- struct{}{}
		<-hold
	}
	if !ok {
		return nil, fosite.ErrNotFound
	}
	cp := *c // a fresh copy, as a database read gives
	cp.SecretHash = append([]byte(nil), c.SecretHash...)
	cp.GrantTypes = append([]string{}, c.GrantTypes...)
	cp.Scopes = append([]string{}, c.Scopes...)
	cp.Audience = append([]string{}, c.Audience...)
	cp.CORSOrigins = append([]string{}, c.CORSOrigins...)
	return &cp, nil
}

func client(id, secret string) *clients.Client {
	return &clients.Client{ID: id, Name: id, SecretHash: clients.HashSecret([]byte(secret)),
		GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{"read"}, Audience: []string{}, CORSOrigins: []string{}}
}

func get(t *testing.T, c *clientcache.Cache, s *source, id string) *clients.Client {
	t.Helper()
	got, err := c.Get(t.Context(), id, s.load)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return got
}

// TestServesWithinTTLThenReloads: a client is read once per TTL; a change
// in the store (another process's) shows once the entry is TTL old, never
// later.
func TestServesWithinTTLThenReloads(t *testing.T) {
	clock := testkit.NewClock(time.Time{})
	c := clientcache.New(clientcache.Options{TTL: time.Second, Now: clock.Now})
	s := newSource(client("a", "old"))
	for range 5 {
		get(t, c, s, "a")
	}
	if n := s.reads.Load(); n != 1 {
		t.Fatalf("%d reads for 5 lookups within the TTL, want 1", n)
	}
	s.set(client("a", "new"))
	clock.Advance(999 * time.Millisecond)
	if got := get(t, c, s, "a"); !clients.SecretMatches(got.SecretHash, []byte("old")) {
		t.Fatal("entry not served within its TTL")
	}
	clock.Advance(time.Millisecond)
	if got := get(t, c, s, "a"); !clients.SecretMatches(got.SecretHash, []byte("new")) {
		t.Fatal("the old secret is still served TTL after it was read")
	}
	if n := s.reads.Load(); n != 2 {
		t.Fatalf("%d reads, want 2", n)
	}
}

// TestInvalidateDropsAtOnce: after Invalidate the next lookup reads the
// store.
func TestInvalidateDropsAtOnce(t *testing.T) {
	c := clientcache.New(clientcache.Options{TTL: time.Hour})
	s := newSource(client("a", "old"))
	get(t, c, s, "a")
	s.set(client("a", "new"))
	c.Invalidate("a")
	if got := get(t, c, s, "a"); !clients.SecretMatches(got.SecretHash, []byte("new")) {
		t.Fatal("old secret served after Invalidate")
	}
}

// TestReadRacingAChangeDoesNotFill: a read that began before a change and
// returns the old row after its invalidation must not cache it.
func TestReadRacingAChangeDoesNotFill(t *testing.T) {
	c := clientcache.New(clientcache.Options{TTL: time.Hour})
	s := newSource(client("a", "old"))
	hold := make(chan struct{})
	s.hold, s.reading = hold, make(chan struct{})
	done := make(chan *clients.Client)
	go func() {
		got, _ := c.Get(context.Background(), "a", s.load)
		done <- got
	}()
	<-s.reading // the read has the old row
	s.mu.Lock()
	s.hold, s.reading = nil, nil
	s.mu.Unlock()
	s.set(client("a", "new")) // the change commits
	c.Invalidate("a")         // and invalidates
	close(hold)
	if got := <-done; !clients.SecretMatches(got.SecretHash, []byte("old")) {
		t.Fatal("the racing read should return what it read")
	}
	if got := get(t, c, s, "a"); !clients.SecretMatches(got.SecretHash, []byte("new")) {
		t.Fatal("the racing read cached the old row after the invalidation")
	}
}

// TestUnknownAndFailedLookupsAreNotCached: an unknown ID or an error is
// read again each time and takes no entry.
func TestUnknownAndFailedLookupsAreNotCached(t *testing.T) {
	c := clientcache.New(clientcache.Options{TTL: time.Hour})
	s := newSource()
	for range 3 {
		if _, err := c.Get(t.Context(), "nope", s.load); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("unknown client: %v", err)
		}
	}
	boom := errors.New("database down")
	for range 3 {
		if _, err := c.Get(t.Context(), "x", func(context.Context, string) (*clients.Client, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("failed read: %v", err)
		}
	}
	if n := s.reads.Load(); n != 3 {
		t.Errorf("%d reads of an unknown client in 3 lookups, want 3", n)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("%d entries after unknown and failed lookups, want 0", n)
	}
	// A store that answers another ID than asked (e.g. a padding
	// collation) is not cached under the asked one.
	c.Get(t.Context(), "a ", func(context.Context, string) (*clients.Client, error) { return client("a", "s"), nil })
	if n := c.Len(); n != 0 {
		t.Errorf("%d entries after a lookup answered with another ID", n)
	}
}

// TestBounded: many distinct clients never hold more than MaxEntries, and
// the most recent one is kept.
func TestBounded(t *testing.T) {
	c := clientcache.New(clientcache.Options{TTL: time.Hour, MaxEntries: 16})
	s := newSource()
	for i := range 1000 {
		id := fmt.Sprint("c", i)
		s.set(client(id, "s"))
		get(t, c, s, id)
		if n := c.Len(); n > 16 {
			t.Fatalf("%d entries after %d clients, cap 16", n, i+1)
		}
	}
	before := s.reads.Load()
	get(t, c, s, "c999")
	if s.reads.Load() != before {
		t.Error("the client just read was evicted")
	}
}

// TestCopies: callers get their own copy; changing it changes nothing
// cached.
func TestCopies(t *testing.T) {
	c := clientcache.New(clientcache.Options{TTL: time.Hour})
	s := newSource(client("a", "s"))
	want := get(t, c, s, "a")
	want2 := *want
	want2.Scopes = append([]string(nil), want.Scopes...)
	want2.SecretHash = append([]byte(nil), want.SecretHash...)
	for range 2 {
		got := get(t, c, s, "a")
		if diff := cmp.Diff(&want2, got); diff != "" {
			t.Fatalf("cached client differs (-want +got):\n%s", diff)
		}
		got.Scopes[0], got.SecretHash[0] = "admin", got.SecretHash[0]^1
		got.GrantTypes = append(got.GrantTypes, clients.GrantPassword)
	}
}

// TestZeroTTLDisables: every lookup reads the store.
func TestZeroTTLDisables(t *testing.T) {
	c := clientcache.New(clientcache.Options{})
	s := newSource(client("a", "s"))
	for range 3 {
		get(t, c, s, "a")
	}
	if n := s.reads.Load(); n != 3 || c.Len() != 0 {
		t.Errorf("%d reads and %d entries with TTL 0, want 3 and 0", n, c.Len())
	}
}

// TestConcurrent runs lookups, expiries and invalidations together (for
// -race): every answer is one of the client's versions, and after the last
// change and invalidation the last version is served.
func TestConcurrent(t *testing.T) {
	clock := testkit.NewClock(time.Time{})
	c := clientcache.New(clientcache.Options{TTL: time.Second, MaxEntries: 4, Now: clock.Now})
	s := newSource()
	for i := range 8 {
		s.set(client(fmt.Sprint("c", i), "v0"))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				id := fmt.Sprint("c", (w+i)%8)
				got, err := c.Get(context.Background(), id, s.load)
				if err != nil || got.ID != id {
					t.Errorf("Get(%s) = %v, %v", id, got, err)
					return
				}
				got.Scopes[0] = "mutated"
			}
		})
	}
	wg.Go(func() {
		for v := 1; v <= 50; v++ {
			s.set(client("c0", fmt.Sprint("v", v)))
			c.Invalidate("c0")
			clock.Advance(100 * time.Millisecond)
		}
	})
	wg.Wait()
	if got := get(t, c, s, "c0"); !clients.SecretMatches(got.SecretHash, []byte("v50")) || got.Scopes[0] != "read" {
		t.Errorf("after the last change: scopes %v, secret not v50: %v", got.Scopes, !clients.SecretMatches(got.SecretHash, []byte("v50")))
	}
	if n := c.Len(); n > 4 {
		t.Errorf("%d entries, cap 4", n)
	}
}

// TestStoresWrap: through the wrappers, GetClient is cached and
// UpdateClient and DeleteClient (what clients.Service calls for updates,
// secret rotation and deletion) invalidate, on a real store.
func TestStoresWrap(t *testing.T) {
	store := storagetest.OpenSQLite(t)
	c := clientcache.New(clientcache.Options{TTL: time.Hour})
	ts, svc := c.TokenStore(store), &clients.Service{Store: c.ClientStore(store)}
	cl, secret, err := svc.Create(t.Context(), clients.Spec{Name: "a", GrantTypes: []string{clients.GrantClientCredentials}})
	if err != nil {
		t.Fatal(err)
	}
	hash := func() []byte {
		t.Helper()
		fc, err := ts.GetClient(t.Context(), cl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fc.(*oauth.Client); !ok {
			t.Fatalf("GetClient returned %T", fc)
		}
		return fc.GetHashedSecret()
	}
	if !clients.SecretMatches(hash(), []byte(secret)) {
		t.Fatal("secret does not match")
	}
	_, rotated, err := svc.RotateSecret(t.Context(), cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if h := hash(); clients.SecretMatches(h, []byte(secret)) || !clients.SecretMatches(h, []byte(rotated)) {
		t.Fatal("old secret still served after RotateSecret")
	}
	if _, err := svc.Patch(t.Context(), cl.ID, func(s *clients.Spec) { s.GrantTypes = []string{clients.GrantRefreshToken} }); err != nil {
		t.Fatal(err)
	}
	if fc, _ := ts.GetClient(t.Context(), cl.ID); fc.GetGrantTypes().Has(clients.GrantClientCredentials) {
		t.Fatal("withdrawn grant type still served after Patch")
	}
	if err := svc.Delete(t.Context(), cl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.GetClient(t.Context(), cl.ID); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted client: %v, want fosite.ErrNotFound", err)
	}
	if _, err := ts.GetClient(t.Context(), "unknown"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("unknown client: %v", err)
	}
}

// otherClientStore answers GetClient with a client of fosite's own type.
type otherClientStore struct {
	oauth.TokenStore
	reads atomic.Int64
}

func (s *otherClientStore) GetClient(_ context.Context, id string) (fosite.Client, error) {
	s.reads.Add(1)
	return &fosite.DefaultClient{ID: id}, nil
}

// TestOtherClientTypesPassUncached: a client that is not an *oauth.Client
// is returned as the store gave it, and read again each time.
func TestOtherClientTypesPassUncached(t *testing.T) {
	c := clientcache.New(clientcache.Options{TTL: time.Hour})
	s := &otherClientStore{}
	ts := c.TokenStore(s)
	for range 2 {
		fc, err := ts.GetClient(t.Context(), "x")
		if _, ok := fc.(*fosite.DefaultClient); !ok || err != nil || fc.GetID() != "x" {
			t.Fatalf("GetClient = %T %v, %v", fc, fc, err)
		}
	}
	if n := s.reads.Load(); n != 2 || c.Len() != 0 {
		t.Errorf("%d reads, %d entries; want 2 and 0", n, c.Len())
	}
}
