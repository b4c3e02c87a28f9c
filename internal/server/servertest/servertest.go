// Package servertest runs a complete Portcullis in a test: a real store
// (SQLite, or any DSN), identity service, key manager and fosite
// provider, wired by server.New exactly as the binary wires them, with
// both listeners on httptest servers. It is the one harness for tests
// that talk HTTP to the server in-process (Dex's newTestServer); tests of
// the binary itself start the real executable instead.
package servertest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/identitytest"
	"github.com/portcullis-auth/portcullis/internal/seal"
	"github.com/portcullis-auth/portcullis/internal/server"
	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clientcache"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/revocation"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// Options adjust the server; the zero value is a server on a fresh SQLite
// file with ES256 keys, a 15-minute access-token TTL, no lockout, no rate
// limits, 64 KiB request bodies and sign-up enabled.
type Options struct {
	// DSN of the store; empty means a new SQLite file.
	DSN string
	// Storage options of the store. Storage.Now, when set, is also the
	// token endpoint's clock (server.Options.Now), so that a test steps
	// one clock past iat's one-second resolution or the refresh reuse
	// grace instead of sleeping.
	Storage storage.Options
	// Keys options of the key manager (Algorithm defaults to ES256).
	Keys keys.Options
	// Lockout is the identity service's lockout policy.
	Lockout identity.LockoutPolicy
	// AccessTokenTTL defaults to 15 minutes, RefreshTokenTTL to an hour.
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// TokenPerIP limits password grants per client IP and second
	// (server.Options.TokenPerIP); zero means no limit.
	TokenPerIP int
	// MaxBodyBytes caps request bodies on both listeners; zero means 64 KiB.
	MaxBodyBytes int64
	// Server, when set, may change the server's options before New.
	Server func(*server.Options)
	// FositeStore, when set, wraps the store fosite's handlers use (to
	// inject a fault or a hook inside a grant's transaction); it sees every
	// GetClient, the client cache being behind it.
	FositeStore func(oauth.TokenStore) oauth.TokenStore
	// ClientCache configures the client cache, wired as the binary wires
	// it; nil means clientcache.DefaultTTL and DefaultMaxEntries on the
	// real clock.
	ClientCache *clientcache.Options
}

// Env is a running server and its parts.
type Env struct {
	// Issuer is the public listener's URL, the tokens' iss.
	Issuer string
	// AdminAudience is the admin API's audience (Issuer + "/admin").
	AdminAudience string
	Public, Admin *httptest.Server
	Store         *storage.Store
	Users         *identity.Service
	// Clients administers clients through the client cache's
	// invalidating store, as the admin API does.
	Clients *clients.Service
	// ClientCache serves the provider's client lookups.
	ClientCache *clientcache.Cache
	Keys        *keys.Manager
	Provider    fosite.OAuth2Provider
	// Revocations is the server's list of revoked grants; no loop polls
	// it (the one server writes every revocation, and syncs at once).
	Revocations *revocation.List
	// PublicRoutes and AdminRoutes are the patterns registered on each
	// listener (server.Handlers).
	PublicRoutes, AdminRoutes []string
}

// New starts a server; everything stops when the test ends.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	dsn := o.DSN
	if dsn == "" {
		dsn = storagetest.SQLiteDSN(t)
	}
	store := storagetest.OpenDSN(t, dsn, o.Storage)
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	alg := o.Keys.Algorithm
	if alg == "" {
		alg = keys.ES256
	}
	km := keys.NewManager(store, sealer, o.Keys)
	if err := km.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	users := identitytest.NewService(store, o.Lockout)
	cacheOpts := clientcache.Options{TTL: clientcache.DefaultTTL}
	if o.ClientCache != nil {
		cacheOpts = *o.ClientCache
	}
	cache := clientcache.New(cacheOpts)
	pubLn, admLn := listen(t), listen(t)
	e := &Env{
		Issuer: "http://" + pubLn.Addr().String(),
		Store:  store, Users: users, Clients: &clients.Service{Store: cache.ClientStore(store)}, ClientCache: cache, Keys: km,
	}
	e.AdminAudience = e.Issuer + "/admin"
	ttl, rttl := o.AccessTokenTTL, o.RefreshTokenTTL
	if ttl == 0 {
		ttl = 15 * time.Minute
	}
	if rttl == 0 {
		rttl = time.Hour
	}
	fositeStore := cache.TokenStore(store)
	if o.FositeStore != nil {
		fositeStore = o.FositeStore(fositeStore)
	}
	e.Revocations = revocation.New(store, revocation.Options{Interval: time.Second, Now: o.Storage.Now})
	store.OnRevoke(func(ctx context.Context) { _ = e.Revocations.Sync(ctx) })
	if err := e.Revocations.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.Provider, err = oauth.NewProvider(oauth.ProviderConfig{
		Issuer: e.Issuer, AccessTokenTTL: ttl, RefreshTokenTTL: rttl,
		RefreshSecret: []byte(strings.Repeat("r", 32)), Revocations: e.Revocations,
	}, fositeStore, km)
	if err != nil {
		t.Fatal(err)
	}
	maxBytes := o.MaxBodyBytes
	if maxBytes == 0 {
		maxBytes = 64 << 10
	}
	so := server.Options{
		Issuer: e.Issuer, Provider: e.Provider, Store: store, Users: users, Clients: e.Clients, Keys: km,
		Audience: oauth.AudiencePolicy{
			Default:        e.Issuer,
			ScopeAudiences: map[string]string{adminapi.Scope: e.AdminAudience},
		},
		AdminAudience: e.AdminAudience, Prepublication: time.Hour,
		DefaultAlgorithm: string(alg), Signup: true, MaxBodyBytes: maxBytes,
		TokenPerIP: o.TokenPerIP, Now: o.Storage.Now, Revocations: e.Revocations,
	}
	if o.Server != nil {
		o.Server(&so)
	}
	h, err := server.New(so)
	if err != nil {
		t.Fatal(err)
	}
	e.Public, e.Admin = serve(t, pubLn, h.Public), serve(t, admLn, h.Admin)
	e.PublicRoutes, e.AdminRoutes = h.PublicRoutes, h.AdminRoutes
	return e
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serve starts an httptest server for h on l (known before the handler
// was built, so the issuer can name it).
func serve(t testing.TB, l net.Listener, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
