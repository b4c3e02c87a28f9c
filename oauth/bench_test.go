package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/ory/fosite"
	"golang.org/x/crypto/argon2"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// The grant benchmarks run the real token endpoint (fosite, storage,
// signing) over loopback HTTP with the default OWASP argon2id parameters,
// next to BenchmarkArgon2id, so the cost of everything but the password
// hash can be read as a ratio from one run:
//
//	go test -run '^$' -bench . -benchtime 3s ./oauth/
//
// Concurrency and latency percentiles are measured against the real
// binary: BenchmarkServerPasswordGrant8 in cmd/portcullis.

var backends = map[string]func(testing.TB) string{"sqlite": storagetest.SQLiteDSN, "mysql": storagetest.MySQLDSN}

func benchEnv(b *testing.B, dsn string) (*env, *clients.Client) {
	e := newEnv(b, servertest.Options{DSN: dsn})
	e.Users.Hasher = identity.NewPasswordHasher(identity.DefaultArgon2Params())
	if _, err := e.Users.Signup(b.Context(), "bench", "purple otter lamp 42", nil); err != nil {
		b.Fatal(err)
	}
	c, _, err := e.Clients.Create(b.Context(), clients.Spec{Name: "bench", Public: true, Audience: []string{api}})
	if err != nil {
		b.Fatal(err)
	}
	return e, c
}

func grant(b *testing.B, client *http.Client, tokenURL string, form url.Values) map[string]any {
	resp, err := client.PostForm(tokenURL, form)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("grant: %d %s", resp.StatusCode, body)
	}
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return out
}

// BenchmarkArgon2id is the raw cost of one hash with the default parameters.
func BenchmarkArgon2id(b *testing.B) {
	p := identity.DefaultArgon2Params()
	salt := make([]byte, p.SaltLength)
	for b.Loop() {
		argon2.IDKey([]byte("purple otter lamp 42"), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLength)
	}
}

func BenchmarkPasswordGrant(b *testing.B) {
	for _, name := range []string{"sqlite", "mysql"} {
		b.Run(name, func(b *testing.B) {
			e, c := benchEnv(b, backends[name](b))
			form := url.Values{"grant_type": {"password"}, "client_id": {c.ID}, "username": {"bench"}, "password": {"purple otter lamp 42"}}
			client := e.Public.Client()
			b.ReportAllocs()
			for b.Loop() {
				grant(b, client, e.tokenURL(), form)
			}
		})
	}
}

func BenchmarkRefreshGrant(b *testing.B) {
	for _, name := range []string{"sqlite", "mysql"} {
		b.Run(name, func(b *testing.B) {
			e, c := benchEnv(b, backends[name](b))
			client := e.Public.Client()
			tokenURL := e.tokenURL()
			tok := grant(b, client, tokenURL, url.Values{"grant_type": {"password"}, "client_id": {c.ID}, "username": {"bench"}, "password": {"purple otter lamp 42"}})
			rt := tok["refresh_token"].(string)
			b.ReportAllocs()
			for b.Loop() {
				next := grant(b, client, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {c.ID}, "refresh_token": {rt}})
				rt = next["refresh_token"].(string)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}

// BenchmarkClientCredentialsGrant is issue 9's client_credentials path
// in-process: client authentication (through the client cache, as the
// binary runs it) and an ES256 signature; access tokens are not stored.
// For a CPU profile:
//
//	go test -run '^$' -bench ClientCredentialsGrant/sqlite -benchtime 5s -cpuprofile cc.prof ./oauth/
func BenchmarkClientCredentialsGrant(b *testing.B) {
	for _, name := range []string{"sqlite", "mysql"} {
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, servertest.Options{DSN: backends[name](b)})
			c, secret, err := e.Clients.Create(b.Context(), clients.Spec{Name: "svc", GrantTypes: []string{clients.GrantClientCredentials}, Audience: []string{api}})
			if err != nil {
				b.Fatal(err)
			}
			testkit.PostParallel(b, e.tokenURL(), "grant_type=client_credentials", testkit.BasicAuth(c.ID, secret), `"access_token"`)
		})
	}
}

// BenchmarkIntrospect is issue 9's introspection path in-process: an
// allowed client introspects an access token.
func BenchmarkIntrospect(b *testing.B) {
	for _, name := range []string{"sqlite", "mysql"} {
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, servertest.Options{DSN: backends[name](b)})
			c, secret, err := e.Clients.Create(b.Context(), clients.Spec{Name: "rs", GrantTypes: []string{clients.GrantClientCredentials},
				Audience: []string{api}, IntrospectionAllowed: true})
			if err != nil {
				b.Fatal(err)
			}
			tok := grant(b, e.Public.Client(), e.tokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {secret}})
			form := url.Values{"token": {tok["access_token"].(string)}, "token_type_hint": {"access_token"}}.Encode()
			testkit.PostParallel(b, e.Issuer+"/oauth2/introspect", form, testkit.BasicAuth(c.ID, secret), `"active":true`)
		})
	}
}

// BenchmarkVerifyAccessToken is the server's own check of an access token
// (introspection, the admin API, revocation), in-process, per algorithm:
// "cold" verifies the signature and lifetime (jwtSigner.Decode), "cached"
// is the provider's IntrospectToken of a token it has verified before
// (lifetime re-checked, revocation list and client looked up).
func BenchmarkVerifyAccessToken(b *testing.B) {
	for _, alg := range []keys.Algorithm{keys.ES256, keys.RS256, keys.EdDSA} {
		e := newEnv(b, servertest.Options{Keys: keys.Options{Algorithm: alg}})
		c, secret, err := e.Clients.Create(b.Context(), clients.Spec{Name: "svc", GrantTypes: []string{clients.GrantClientCredentials}, Audience: []string{api}})
		if err != nil {
			b.Fatal(err)
		}
		tok := grant(b, e.Public.Client(), e.tokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {secret}})
		at := tok["access_token"].(string)
		b.Run(string(alg)+"/cold", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := oauth.DecodeAccessToken(b.Context(), e.Keys, at); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(alg)+"/cached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := e.Provider.IntrospectToken(b.Context(), at, fosite.AccessToken, oauth.NewSession()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
