package clientcache

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// Defaults of Options.
const (
	// DefaultTTL is the default Options.TTL: the bound on how long a
	// change made by another process may go unnoticed.
	DefaultTTL = time.Second
	// DefaultMaxEntries is the default Options.MaxEntries.
	DefaultMaxEntries = 10000
)

// evictionSample is how many entries a full cache looks at to find one to
// evict (an expired one if any, else the first seen), Redis-style: O(1)
// whatever the size.
const evictionSample = 8

// Options configure a Cache.
type Options struct {
	// TTL is how long a client read from the store is served from memory,
	// counted from the start of that read: the bound on how stale a
	// client may be after another process changed it. Zero or negative
	// disables the cache (every lookup reads the store).
	TTL time.Duration
	// MaxEntries caps the number of cached clients; when full, an entry
	// (an expired one if a small sample finds one) is evicted for the
	// new one. Zero means DefaultMaxEntries.
	MaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Cache is a bounded, expiring map from client ID to client. Its zero value
// is not usable: use New. It is safe for concurrent use.
type Cache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.RWMutex
	entries map[string]entry
	// gen counts invalidations: a read that began under another
	// generation may have seen a row that has since changed, and does not
	// fill the cache.
	gen uint64
}

type entry struct {
	client  *clients.Client
	expires time.Time
}

// New returns an empty cache.
func New(o Options) *Cache {
	c := &Cache{ttl: o.TTL, max: o.MaxEntries, now: o.Now, entries: map[string]entry{}}
	if c.max <= 0 {
		c.max = DefaultMaxEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Len returns the number of cached clients, expired ones not yet evicted
// included.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Invalidate drops the client with the given ID, and keeps any read of
// the store already under way from caching what it found. Call it after a
// change to the client is committed.
func (c *Cache) Invalidate(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.gen++
	c.mu.Unlock()
}

// Get returns a copy of the client with the given ID: from memory while
// its entry is fresh, otherwise from load, whose result is cached if load
// succeeds, returns a client with exactly that ID and no invalidation
// happened meanwhile. load's errors are returned unchanged and never
// cached.
func (c *Cache) Get(ctx context.Context, id string, load func(context.Context, string) (*clients.Client, error)) (*clients.Client, error) {
	if c.ttl <= 0 {
		return load(ctx, id)
	}
	start := c.now()
	c.mu.RLock()
	e, ok := c.entries[id]
	gen := c.gen
	c.mu.RUnlock()
	if ok && start.Before(e.expires) {
		return clone(e.client), nil
	}
	cl, err := load(ctx, id)
	if err != nil || cl == nil || cl.ID != id {
		return cl, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if _, present := c.entries[id]; !present && len(c.entries) >= c.max {
			c.evictOne(start)
		}
		c.entries[id] = entry{client: clone(cl), expires: start.Add(c.ttl)}
	}
	c.mu.Unlock()
	return cl, nil
}

// evictOne removes one entry: the first expired one among a few, else
// the first one seen (map iteration starts at a random place). c.mu must
// be held.
func (c *Cache) evictOne(now time.Time) {
	victim, n := "", 0
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			victim = id
			break
		}
		if n == 0 {
			victim = id
		}
		if n++; n == evictionSample {
			break
		}
	}
	delete(c.entries, victim)
}

// clone returns a deep copy of cl (nil and empty lists stay as they are).
func clone(cl *clients.Client) *clients.Client {
	cp := *cl
	cp.SecretHash = slices.Clone(cl.SecretHash)
	cp.GrantTypes = slices.Clone(cl.GrantTypes)
	cp.Scopes = slices.Clone(cl.Scopes)
	cp.Audience = slices.Clone(cl.Audience)
	cp.CORSOrigins = slices.Clone(cl.CORSOrigins)
	return &cp
}

// TokenStore returns s with its GetClient answered through c (the lookup
// of client authentication at the token, revocation and introspection
// endpoints); every other method is s's. Pass it to oauth.NewProvider.
// Clients that s.GetClient returns as anything but *oauth.Client are
// passed through uncached.
func (c *Cache) TokenStore(s oauth.TokenStore) oauth.TokenStore {
	return &tokenStore{TokenStore: s, cache: c}
}

type tokenStore struct {
	oauth.TokenStore
	cache *Cache
}

var _ oauth.TokenStore = (*tokenStore)(nil)

// errNotCacheable stops the cache from keeping a client of another type
// than *oauth.Client; GetClient returns that client uncached.
var errNotCacheable = errors.New("clientcache: client of an unexpected type")

// GetClient implements fosite.ClientManager: the *oauth.Client with the
// given ID, or the store's error (fosite.ErrNotFound for an unknown one).
func (s *tokenStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	var other fosite.Client
	cl, err := s.cache.Get(ctx, id, func(ctx context.Context, id string) (*clients.Client, error) {
		fc, err := s.TokenStore.GetClient(ctx, id)
		if err != nil {
			return nil, err
		}
		if oc, ok := fc.(*oauth.Client); ok && oc.Client != nil {
			return oc.Client, nil
		}
		other = fc
		return nil, errNotCacheable
	})
	if other != nil {
		return other, nil
	}
	if err != nil {
		return nil, err
	}
	return &oauth.Client{Client: cl}, nil
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage. When
// storing fails, the client's entry is dropped: the client may have been
// deleted by another process while cached (the token's row then refers to
// no client), and the next request reads it again.
func (s *tokenStore) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	err := s.TokenStore.CreateRefreshTokenSession(ctx, signature, accessSignature, req)
	s.dropOnError(err, req)
	return err
}

func (s *tokenStore) dropOnError(err error, req fosite.Requester) {
	if err != nil && req != nil && req.GetClient() != nil {
		s.cache.Invalidate(req.GetClient().GetID())
	}
}

// ClientStore returns s with every change to a client (UpdateClient,
// which also rotates secrets, and DeleteClient) invalidating its entry in c
// once the change returns, whether it succeeded or not. Give it to the
// clients.Service of the process whose lookups c serves.
func (c *Cache) ClientStore(s clients.Store) clients.Store {
	return &clientStore{Store: s, cache: c}
}

type clientStore struct {
	clients.Store
	cache *Cache
}

var _ clients.Store = (*clientStore)(nil)

// UpdateClient implements clients.Store, then invalidates the client
// (again once the transaction of Transactor, if any, has ended).
func (s *clientStore) UpdateClient(ctx context.Context, id string, update func(*clients.Client) error) (*clients.Client, error) {
	defer s.invalidate(ctx, id)
	return s.Store.UpdateClient(ctx, id, update)
}

// DeleteClient implements clients.Store, then invalidates the client
// (again once the transaction of Transactor, if any, has ended).
func (s *clientStore) DeleteClient(ctx context.Context, id string) error {
	defer s.invalidate(ctx, id)
	return s.Store.DeleteClient(ctx, id)
}

func (s *clientStore) invalidate(ctx context.Context, id string) {
	s.cache.Invalidate(id)
	if changed, ok := ctx.Value(changedKey{}).(*changedClients); ok {
		changed.mu.Lock()
		changed.ids = append(changed.ids, id)
		changed.mu.Unlock()
	}
}

// changedKey is the context key of the clients a transaction changed.
type changedKey struct{}

type changedClients struct {
	mu  sync.Mutex
	ids []string
}

// Transactor returns t with every client that ClientStore changes in a
// transaction invalidated once more when the transaction ends: a lookup
// between the change and the commit would otherwise cache the old client
// for the TTL. Give it to the clients.Service with ClientStore.
func (c *Cache) Transactor(t clients.Transactor) clients.Transactor {
	return &transactor{t: t, cache: c}
}

type transactor struct {
	t     clients.Transactor
	cache *Cache
}

// InTx implements clients.Transactor.
func (t *transactor) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	changed := &changedClients{}
	defer func() {
		changed.mu.Lock()
		defer changed.mu.Unlock()
		for _, id := range changed.ids {
			t.cache.Invalidate(id)
		}
	}()
	return t.t.InTx(context.WithValue(ctx, changedKey{}, changed), fn)
}
