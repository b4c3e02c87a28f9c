package clientcache_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/clientcache"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

var backends = []struct {
	name string
	dsn  func(testing.TB) string
}{{"sqlite", storagetest.SQLiteDSN}, {"mysql", storagetest.MySQLDSN}}

// caches are the two sides of each comparison: every lookup from the
// store, and the cache at its default TTL.
var caches = []struct {
	name string
	opts clientcache.Options
}{{"uncached", clientcache.Options{}}, {"cached", clientcache.Options{TTL: clientcache.DefaultTTL}}}

// BenchmarkGetClient is the lookup behind client authentication, alone:
// the store's GetClient (a SELECT and the decoding of the client's lists)
// against the cache's (a map read and a copy).
//
//	go test -run '^$' -bench GetClient -benchmem ./oauth/clientcache/
func BenchmarkGetClient(b *testing.B) {
	for _, be := range backends {
		for _, cc := range caches {
			b.Run(be.name+"/"+cc.name, func(b *testing.B) {
				store := storagetest.OpenDSN(b, be.dsn(b))
				cache := clientcache.New(cc.opts)
				svc := &clients.Service{Store: cache.ClientStore(store)}
				c, _, err := svc.Create(b.Context(), clients.Spec{Name: "svc", GrantTypes: []string{clients.GrantClientCredentials},
					Scopes: []string{"read", "write"}, Audience: []string{"https://api.example.test"}})
				if err != nil {
					b.Fatal(err)
				}
				ts := cache.TokenStore(store)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ts.GetClient(b.Context(), c.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkClientCredentialsCache is issue 9's client_credentials path
// in-process (servertest: the real handler chain over loopback HTTP, with
// GOMAXPROCS×16 concurrent keep-alive clients as loadgen's c=32 on two
// CPUs), without and with the client cache, in one run.
//
//	go test -run '^$' -bench ClientCredentialsCache -benchmem -benchtime 3s ./oauth/clientcache/
func BenchmarkClientCredentialsCache(b *testing.B) {
	for _, be := range backends {
		for _, cc := range caches {
			b.Run(be.name+"/"+cc.name, func(b *testing.B) {
				e := servertest.New(b, servertest.Options{DSN: be.dsn(b), ClientCache: &cc.opts})
				c, secret, err := e.Clients.Create(b.Context(), clients.Spec{Name: "svc", GrantTypes: []string{clients.GrantClientCredentials},
					Audience: []string{"https://api.example.test"}})
				if err != nil {
					b.Fatal(err)
				}
				testkit.PostParallel(b, e.Issuer+"/oauth2/token", "grant_type=client_credentials", testkit.BasicAuth(c.ID, secret), `"access_token"`)
			})
		}
	}
}

// BenchmarkIntrospectCache is issue 9's introspection path in-process: an
// allowed client introspects an access token (its client looked up twice:
// the caller's authentication and the token's client), without and with
// the client cache.
//
//	go test -run '^$' -bench IntrospectCache -benchmem -benchtime 3s ./oauth/clientcache/
func BenchmarkIntrospectCache(b *testing.B) {
	for _, be := range backends {
		for _, cc := range caches {
			b.Run(be.name+"/"+cc.name, func(b *testing.B) {
				e := servertest.New(b, servertest.Options{DSN: be.dsn(b), ClientCache: &cc.opts})
				c, secret, err := e.Clients.Create(b.Context(), clients.Spec{Name: "rs", GrantTypes: []string{clients.GrantClientCredentials},
					Audience: []string{"https://api.example.test"}, IntrospectionAllowed: true})
				if err != nil {
					b.Fatal(err)
				}
				resp, err := e.Public.Client().PostForm(e.Issuer+"/oauth2/token", url.Values{"grant_type": {"client_credentials"},
					"client_id": {c.ID}, "client_secret": {secret}})
				if err != nil {
					b.Fatal(err)
				}
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				err = json.NewDecoder(resp.Body).Decode(&tok)
				resp.Body.Close()
				if err != nil || tok.AccessToken == "" {
					b.Fatalf("token: %v", err)
				}
				form := url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}.Encode()
				testkit.PostParallel(b, e.Issuer+"/oauth2/introspect", form, testkit.BasicAuth(c.ID, secret), `"active":true`)
			})
		}
	}
}
