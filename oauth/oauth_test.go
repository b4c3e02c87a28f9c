package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

const api = "https://api.example.test"

// env is a complete authorization server in-process (servertest: real
// store, keys, identity and fosite, wired by server.New as the binary
// wires them), with its clock.
type env struct {
	*servertest.Env
	// clock is the server's clock (token endpoint and store): a test steps
	// it past iat's one-second resolution or the refresh reuse grace
	// instead of sleeping. It starts at the wall clock, which fosite and
	// the JWT checks still read (they allow a few seconds of skew).
	clock *testkit.Clock
}

// newEnv starts a server with o, filling in what these tests assume
// unless o sets it: a lockout after 5 failures within a minute, for a
// minute; a 10-second refresh reuse grace; and a clock they can step.
func newEnv(t testing.TB, o servertest.Options) *env {
	t.Helper()
	if o.Lockout == (identity.LockoutPolicy{}) {
		o.Lockout = identity.LockoutPolicy{MaxFailures: 5, Window: time.Minute, Duration: time.Minute}
	}
	if o.Storage.RefreshReuseGrace == 0 {
		o.Storage.RefreshReuseGrace = 10 * time.Second
	}
	clock := testkit.NewClock(time.Now())
	o.Storage.Now = clock.Now
	return &env{Env: servertest.New(t, o), clock: clock}
}

// tokenURL is the token endpoint.
func (e *env) tokenURL() string { return e.Issuer + "/oauth2/token" }

func (e *env) client(t *testing.T, spec clients.Spec) (*clients.Client, string) {
	t.Helper()
	c, secret, err := e.Clients.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return c, secret
}

func (e *env) user(t *testing.T, name string, roles ...string) *identity.User {
	t.Helper()
	u, err := e.Users.Signup(t.Context(), name, "purple otter lamp 42", roles)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *env) conf(c *clients.Client, secret string, style oauth2.AuthStyle, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: c.ID, ClientSecret: secret, Scopes: scopes,
		Endpoint: oauth2.Endpoint{TokenURL: e.tokenURL(), AuthStyle: style}}
}

func claimsOf(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, _ := base64.RawURLEncoding.DecodeString(parts[i])
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// post sends form to path at e, with HTTP Basic credentials when basic
// holds an ID and a secret, and returns the status, the header fields and
// the JSON body (nil when there is none).
func (e *env) post(t testing.TB, path string, form url.Values, basic ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.Issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header, body
}

func rfcCode(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an RFC 6749 error", err)
	}
	return re.ErrorCode
}

func TestPasswordGrantClaims(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	u := e.user(t, "Alice", "admin", "user")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Scopes: []string{"read", "write"}, Audience: []string{api, "https://other.example.test"}})
	tok, err := e.conf(c, "", oauth2.AuthStyleInParams, "read").PasswordCredentialsToken(t.Context(), "alice", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	h, cl := claimsOf(t, tok.AccessToken)
	k, _ := e.Keys.SigningKey()
	if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] != k.ID {
		t.Errorf("header = %v", h)
	}
	want := map[string]any{"iss": e.Issuer, "sub": u.ID, "client_id": c.ID, "scope": "read", "preferred_username": "Alice"}
	for name, v := range want {
		if cl[name] != v {
			t.Errorf("%s = %v, want %v", name, cl[name], v)
		}
	}
	if roles, _ := json.Marshal(cl["roles"]); string(roles) != `["admin","user"]` {
		t.Errorf("roles = %s", roles)
	}
	if aud, _ := json.Marshal(cl["aud"]); string(aud) != `["https://api.example.test","https://other.example.test"]` {
		t.Errorf("aud without an audience parameter = %s, want every registered audience", aud)
	}
	iat, nbf, exp := cl["iat"].(float64), cl["nbf"].(float64), cl["exp"].(float64)
	if now := float64(time.Now().Unix()); iat < now-5 || iat > now+1 || nbf != iat || exp-iat != 900 {
		t.Errorf("iat %v nbf %v exp %v", iat, nbf, exp)
	}
	if cl["jti"] == "" || cl["jti"] == nil {
		t.Error("no jti")
	}
}

// TestAlgorithms runs the whole server path (grant, introspection by the
// kid-selecting signer) with each configurable algorithm; fosite's own
// signer cannot introspect EdDSA tokens.
func TestAlgorithms(t *testing.T) {
	for _, alg := range []keys.Algorithm{keys.ES256, keys.RS256, keys.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			e := newEnv(t, servertest.Options{Keys: keys.Options{Algorithm: alg}})
			e.user(t, "algo")
			c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
			tok, err := e.conf(c, "", oauth2.AuthStyleInParams).PasswordCredentialsToken(t.Context(), "algo", "purple otter lamp 42")
			if err != nil {
				t.Fatal(err)
			}
			if h, _ := claimsOf(t, tok.AccessToken); h["alg"] != string(alg) {
				t.Fatalf("alg = %v", h["alg"])
			}
			if _, _, err := e.Provider.IntrospectToken(t.Context(), tok.AccessToken, fosite.AccessToken, oauth.NewSession()); err != nil {
				t.Fatalf("introspect: %v", err)
			}
		})
	}
}

func TestAudienceAndScopeRequests(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	e.user(t, "bob")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Scopes: []string{"read"}, Audience: []string{api, "https://b.example.test"}})
	tests := []struct {
		name    string
		form    url.Values
		code    string
		wantAud string
	}{
		{"one registered audience", url.Values{"audience": {api}}, "", `["https://api.example.test"]`},
		{"no request: every registered audience", nil, "", `["https://api.example.test","https://b.example.test"]`},
		{"RFC 8707 §2 unregistered audience → invalid_target", url.Values{"audience": {"https://evil.example.test"}}, "invalid_target", ""},
		{"RFC 8707 §2 resource mapped to aud", url.Values{"resource": {api}}, "", `["https://api.example.test"]`},
		{"RFC 8707 §2 resource repeated", url.Values{"resource": {api, "https://b.example.test"}}, "", `["https://api.example.test","https://b.example.test"]`},
		{"RFC 8707 §2 audience and resource together: the union", url.Values{"audience": {api}, "resource": {"https://b.example.test"}}, "", `["https://api.example.test","https://b.example.test"]`},
		{"RFC 8707 §2 unregistered resource → invalid_target", url.Values{"resource": {"https://evil.example.test"}}, "invalid_target", ""},
		{"RFC 8707 §2 one of two resources unregistered → invalid_target", url.Values{"resource": {api, "https://evil.example.test"}}, "invalid_target", ""},
		{"RFC 8707 §2 resource with a fragment → invalid_target", url.Values{"resource": {api + "#x"}}, "invalid_target", ""},
		{"RFC 8707 §2 relative resource → invalid_target", url.Values{"resource": {"api.example.test"}}, "invalid_target", ""},
		{"RFC 6749 §3.2 other parameters still once only", url.Values{"audience": {api, api}}, "invalid_request", ""},
		{"unregistered scope", url.Values{"scope": {"write"}}, "invalid_scope", ""},
		{"missing password", url.Values{"password": {""}}, "invalid_request", ""},
		{"unsupported grant", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}}, "unsupported_grant_type", ""},
		// The grant exists (codes of the challenge endpoint); this client
		// is not registered for it (RFC 6749 §5.2).
		{"RFC 6749 §4.1.3 client without the authorization code grant", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, "unauthorized_client", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"password"}, "client_id": {c.ID}, "username": {"bob"}, "password": {"purple otter lamp 42"}}
			for k, v := range tc.form {
				form[k] = v
			}
			resp, err := http.PostForm(e.tokenURL(), form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if tc.code != "" {
				if body["error"] != tc.code || resp.Header.Get("Cache-Control") != "no-store" {
					t.Fatalf("status %d body %v, want error %s with no-store", resp.StatusCode, body, tc.code)
				}
				return
			}
			_, cl := claimsOf(t, body["access_token"].(string))
			if aud, _ := json.Marshal(cl["aud"]); string(aud) != tc.wantAud {
				t.Errorf("aud = %s, want %s", aud, tc.wantAud)
			}
		})
	}
}

func TestClientAuthentication(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	// Registered without a method: client_secret_basic and
	// client_secret_post are both accepted, so client libraries work at their defaults.
	dflt, dfltSecret := e.client(t, clients.Spec{Name: "default", GrantTypes: []string{"client_credentials"}, Audience: []string{api}})
	basic, basicSecret := e.client(t, clients.Spec{Name: "basic", AuthMethod: clients.AuthSecretBasic, GrantTypes: []string{"client_credentials"}, Audience: []string{api}})
	post, postSecret := e.client(t, clients.Spec{Name: "post", AuthMethod: clients.AuthSecretPost, GrantTypes: []string{"client_credentials"}, Audience: []string{api}})
	public, _ := e.client(t, clients.Spec{Name: "public", Public: true, Audience: []string{api}})
	// RFC 7523 §2.2 client assertion (private_key_jwt): not supported, so
	// refused even beside the right secret.
	assertion := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"a.b.c"}}
	tests := []struct {
		name   string
		id     string
		secret string
		style  oauth2.AuthStyle
		code   string
		params url.Values
	}{
		{"RFC 6749 §2.3.1 default client with basic", dflt.ID, dfltSecret, oauth2.AuthStyleInHeader, "", nil},
		{"RFC 6749 §2.3.1 default client with post", dflt.ID, dfltSecret, oauth2.AuthStyleInParams, "", nil},
		{"RFC 6749 §2.3.1 default client auto-detected", dflt.ID, dfltSecret, oauth2.AuthStyleAutoDetect, "", nil},
		{"basic client with basic", basic.ID, basicSecret, oauth2.AuthStyleInHeader, "", nil},
		{"basic client with post", basic.ID, basicSecret, oauth2.AuthStyleInParams, "invalid_client", nil},
		{"post client with post", post.ID, postSecret, oauth2.AuthStyleInParams, "", nil},
		{"post client with basic", post.ID, postSecret, oauth2.AuthStyleInHeader, "invalid_client", nil},
		{"wrong secret", basic.ID, basicSecret + "x", oauth2.AuthStyleInHeader, "invalid_client", nil},
		{"unknown client", "nope", "x", oauth2.AuthStyleInHeader, "invalid_client", nil},
		{"RFC 6749 §5.2 public client cannot use client_credentials", public.ID, "", oauth2.AuthStyleInParams, "unauthorized_client", nil},
		{"RFC 7523 client assertion with post", dflt.ID, dfltSecret, oauth2.AuthStyleInParams, "invalid_client", assertion},
		{"RFC 7523 client assertion with basic", dflt.ID, dfltSecret, oauth2.AuthStyleInHeader, "invalid_client", assertion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc := &clientcredentials.Config{ClientID: tc.id, ClientSecret: tc.secret, TokenURL: e.tokenURL(), AuthStyle: tc.style, EndpointParams: tc.params}
			tok, err := cc.Token(t.Context())
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, cl := claimsOf(t, tok.AccessToken); cl["sub"] != tc.id || cl["client_id"] != tc.id {
					t.Errorf("client_credentials claims %v", cl)
				}
				return
			}
			if got := rfcCode(t, err); got != tc.code {
				t.Fatalf("error %s, want %s", got, tc.code)
			}
			var re *oauth2.RetrieveError
			errors.As(err, &re)
			if re.Response.StatusCode == http.StatusUnauthorized && re.Response.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	u := e.user(t, "carol", "user")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	conf := e.conf(c, "", oauth2.AuthStyleInParams)
	ctx := t.Context()
	tok, err := conf.PasswordCredentialsToken(ctx, "carol", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second) // iat has one-second resolution
	roles := []string{"auditor"}
	if _, err := e.Users.Update(ctx, u.ID, identity.Change{Roles: &roles}); err != nil {
		t.Fatal(err)
	}
	next, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	_, a := claimsOf(t, tok.AccessToken)
	_, b := claimsOf(t, next.AccessToken)
	if b["iat"].(float64) <= a["iat"].(float64) || b["jti"] == a["jti"] {
		t.Errorf("refreshed token kept iat/jti: %v %v / %v %v", a["iat"], a["jti"], b["iat"], b["jti"])
	}
	if got, _ := json.Marshal(b["roles"]); string(got) != `["auditor"]` {
		t.Errorf("roles after refresh = %s, want the current roles", got)
	}

	// A password change (an admin resetting a compromised account) ends
	// every grant of the user: the old refresh token stops working.
	newPassword := "another long passphrase 7"
	if _, err := e.Users.Update(ctx, u.ID, identity.Change{Password: &newPassword}); err != nil {
		t.Fatal(err)
	}
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token()
	if code := rfcCode(t, err); code != "invalid_grant" {
		t.Fatalf("refresh after a password change: %s", code)
	}
	next, err = conf.PasswordCredentialsToken(ctx, "carol", newPassword)
	if err != nil {
		t.Fatal(err)
	}

	// A disabled user's refresh token stops working.
	yes := true
	if _, err := e.Users.Update(ctx, u.ID, identity.Change{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token()
	if code := rfcCode(t, err); code != "invalid_grant" {
		t.Fatalf("refresh by disabled user: %s", code)
	}
}

// TestConcurrentRefresh presents one refresh token from 20 goroutines:
// exactly one may succeed, on both backends.
func TestConcurrentRefresh(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": storagetest.SQLiteDSN, "mysql": storagetest.MySQLDSN} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, servertest.Options{DSN: dsn(t)})
			e.user(t, "dave")
			c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
			conf := e.conf(c, "", oauth2.AuthStyleInParams)
			tok, err := conf.PasswordCredentialsToken(t.Context(), "dave", "purple otter lamp 42")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			results := map[string]int{}
			var winner *oauth2.Token
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					got, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						results["ok"]++
						winner = got
						return
					}
					var re *oauth2.RetrieveError
					if errors.As(err, &re) {
						results[re.ErrorCode]++
					} else {
						results[err.Error()]++
					}
				})
			}
			wg.Wait()
			if results["ok"] != 1 || results["invalid_grant"] != 19 {
				t.Fatalf("results = %v, want exactly one success and 19 invalid_grant", results)
			}
			// The losers were duplicates within the reuse grace, not
			// replays: the grant, and so the winner's new token, survives.
			if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: winner.RefreshToken}).Token(); err != nil {
				t.Fatalf("winner's refresh token after the race: %v", err)
			}
		})
	}
}

// TestRefreshReuse: a second use of a refresh token within the grace is
// refused and the grant survives; after it, it is a replay and the whole
// grant is revoked (RFC 9700 §4.14.2).
func TestRefreshReuse(t *testing.T) {
	e := newEnv(t, servertest.Options{Storage: storage.Options{RefreshReuseGrace: time.Second}})
	e.user(t, "ivy")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	conf := e.conf(c, "", oauth2.AuthStyleInParams)
	ctx := t.Context()
	refresh := func(rt string) (*oauth2.Token, error) {
		return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	tok, err := conf.PasswordCredentialsToken(ctx, "ivy", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	next, err := refresh(tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refresh(tok.RefreshToken); rfcCode(t, err) != "invalid_grant" {
		t.Fatal("duplicate within the grace was accepted")
	}
	next, err = refresh(next.RefreshToken)
	if err != nil {
		t.Fatalf("grant revoked by a duplicate within the grace: %v", err)
	}
	e.clock.Advance(time.Second) // the grace is 1s: tok was rotated 1s ago
	if _, err := refresh(tok.RefreshToken); rfcCode(t, err) != "invalid_grant" {
		t.Fatal("replay after the grace was accepted")
	}
	if _, err := refresh(next.RefreshToken); rfcCode(t, err) != "invalid_grant" {
		t.Fatal("grant still alive after a replay")
	}
}

func TestLockoutAndThrottling(t *testing.T) {
	e := newEnv(t, servertest.Options{TokenPerIP: 1000})
	erin := e.user(t, "erin")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	conf := e.conf(c, "", oauth2.AuthStyleInParams)
	for i := range 5 {
		if _, err := conf.PasswordCredentialsToken(t.Context(), "erin", "wrong password number"); rfcCode(t, err) != "invalid_grant" {
			t.Fatalf("attempt %d", i)
		}
	}
	// Locked for this network: even the right password is held back, with
	// 429 temporarily_unavailable and Retry-After, without a password check.
	_, err := conf.PasswordCredentialsToken(t.Context(), "erin", "purple otter lamp 42")
	var locked *oauth2.RetrieveError
	if !errors.As(err, &locked) || locked.ErrorCode != "temporarily_unavailable" || locked.Response.StatusCode != http.StatusTooManyRequests ||
		locked.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("locked account: %v", err)
	}
	if _, err := e.Users.Update(t.Context(), erin.ID, identity.Change{Unlock: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := conf.PasswordCredentialsToken(t.Context(), "erin", "purple otter lamp 42"); err != nil {
		t.Fatalf("after unlock: %v", err)
	}

	// TokenPerIP 1: one password grant per second and client IP (burst
	// 1); a second one within that second gets 429 with Retry-After.
	limited := newEnv(t, servertest.Options{TokenPerIP: 1})
	limited.user(t, "frank")
	lc, _ := limited.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	lconf := limited.conf(lc, "", oauth2.AuthStyleInParams)
	if _, err := lconf.PasswordCredentialsToken(t.Context(), "frank", "purple otter lamp 42"); err != nil {
		t.Fatalf("first attempt, within the burst: %v", err)
	}
	_, last := lconf.PasswordCredentialsToken(t.Context(), "frank", "purple otter lamp 42")
	var re *oauth2.RetrieveError
	if !errors.As(last, &re) || re.Response.StatusCode != http.StatusTooManyRequests || re.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("second attempt with burst 1: %v", last)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, servertest.Options{MaxBodyBytes: 4096})
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"too large", "grant_type=password&username=" + strings.Repeat("a", 5000), http.StatusRequestEntityTooLarge, "invalid_request"},
		{"no grant type", "username=x", http.StatusBadRequest, "invalid_request"},
		{"bad encoding", "grant_type=%zz", http.StatusBadRequest, "invalid_request"},
		{"RFC 6749 §5.2 no client authentication", "grant_type=password&username=a&password=b", http.StatusUnauthorized, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(e.tokenURL(), "application/x-www-form-urlencoded", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("not JSON: %s", raw)
			}
			if resp.StatusCode != tc.status || body["error"] != tc.code || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d body %s headers %v", resp.StatusCode, raw, resp.Header)
			}
			if strings.Contains(string(raw), "goroutine") || strings.Contains(string(raw), ".go:") {
				t.Fatalf("stack trace leaked: %s", raw)
			}
		})
	}
}

// TestIntrospectionAfterRotation: tokens signed by a retired key still
// introspect as active (fosite#786 does not apply), and revoked ones not.
func TestIntrospectionAfterRotation(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	e.user(t, "gina")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	rs, rsSecret := e.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, IntrospectionAllowed: true})
	tok, err := e.conf(c, "", oauth2.AuthStyleInParams).PasswordCredentialsToken(t.Context(), "gina", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Keys.Rotate(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	introspect := func(token string) map[string]any {
		_, _, out := e.post(t, "/oauth2/introspect", url.Values{"token": {token}}, rs.ID, rsSecret)
		return out
	}
	got := introspect(tok.AccessToken)
	if got["active"] != true {
		t.Fatalf("token of the retired key: %v", got)
	}
	_, cl := claimsOf(t, tok.AccessToken)
	for _, k := range []string{"jti", "exp", "iat", "nbf", "sub", "iss", "client_id"} {
		if got[k] != cl[k] {
			t.Errorf("introspection %s = %v, token has %v", k, got[k], cl[k])
		}
	}
	if got["token_use"] != "access_token" || got["token_type"] != "Bearer" || got["username"] != "gina" {
		t.Errorf("introspection of an access token: %v", got)
	}
	rt := introspect(tok.RefreshToken)
	if exp, _ := rt["exp"].(float64); rt["active"] != true || rt["token_use"] != "refresh_token" ||
		time.Until(time.Unix(int64(exp), 0)) < 50*time.Minute || rt["jti"] != nil {
		t.Errorf("introspection of a refresh token (1h lifetime): %v", rt)
	}
	resp, err := http.PostForm(e.Issuer+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {c.ID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := introspect(tok.AccessToken); got["active"] != false {
		t.Fatalf("revoked token: %v", got)
	}
	if got := introspect("not-a-token"); got["active"] != false {
		t.Fatalf("garbage: %v", got)
	}
}

// FuzzIntrospect feeds arbitrary strings to the server-side token check
// behind introspection and the admin API (fosite's CoreValidator over our
// kid-selecting JWT signer): it must never panic, and the only token it may
// accept is the one this server issued.
func FuzzIntrospect(f *testing.F) {
	e := newEnv(f, servertest.Options{})
	if _, err := e.Users.Signup(f.Context(), "fuzz", "purple otter lamp 42", nil); err != nil {
		f.Fatal(err)
	}
	c, _, err := e.Clients.Create(f.Context(), clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	if err != nil {
		f.Fatal(err)
	}
	tok, err := e.conf(c, "", oauth2.AuthStyleInParams).PasswordCredentialsToken(f.Context(), "fuzz", "purple otter lamp 42")
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	f.Add(tok.AccessToken)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".")
	f.Add(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"y"}`)) + "." + parts[2])
	f.Add(tok.AccessToken + "=")
	f.Add(tok.RefreshToken)
	f.Add("a.b.c.d.e")
	f.Fuzz(func(t *testing.T, token string) {
		_, ar, err := e.Provider.IntrospectToken(context.Background(), token, fosite.AccessToken, oauth.NewSession())
		if err != nil {
			return
		}
		if token != tok.AccessToken && token != tok.RefreshToken {
			t.Fatalf("accepted a token this server did not issue: %q (%v)", token, ar.GetID())
		}
	})
}

// TestRevokeAndIntrospectErrors: RFC 7009 refuses revoking another
// client's token; introspection errors use RFC 6749 codes.
func TestRevokeAndIntrospectErrors(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	e.user(t, "hank")
	a, _ := e.client(t, clients.Spec{Name: "a", Public: true, Audience: []string{api}})
	b, _ := e.client(t, clients.Spec{Name: "b", Public: true, Audience: []string{api}})
	tok, err := e.conf(a, "", oauth2.AuthStyleInParams).PasswordCredentialsToken(t.Context(), "hank", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, form url.Values, basic ...string) (int, map[string]any) {
		status, _, body := e.post(t, path, form, basic...)
		return status, body
	}
	status, body := post("/oauth2/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {b.ID}})
	if status != http.StatusBadRequest || body["error"] != "unauthorized_client" {
		t.Fatalf("revoking another client's token: %d %v", status, body)
	}
	if _, err := e.conf(a, "", oauth2.AuthStyleInParams).TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("the token was revoked by another client: %v", err)
	}
	status, body = post("/oauth2/introspect", url.Values{"token": {tok.AccessToken}})
	if status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("unauthenticated introspection: %d %v", status, body)
	}
	status, body = post("/oauth2/revoke", url.Values{"client_id": {a.ID}})
	if status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Fatalf("revocation without a token: %d %v", status, body)
	}
	status, _ = post("/oauth2/revoke", url.Values{"token": {"unknown"}, "client_id": {a.ID}})
	if status != http.StatusOK {
		t.Fatalf("revoking an unknown token: %d, want 200 (RFC 7009 §2.2)", status)
	}
}

// authlessProvider hides fosite's client authentication from the
// introspection handler.
type authlessProvider struct{ fosite.OAuth2Provider }

// TestIntrospectionFailsClosed: a provider that cannot authenticate clients
// makes the introspection endpoint answer server_error, never a token's
// details.
func TestIntrospectionFailsClosed(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	rs, secret := e.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, Audience: []string{api}, IntrospectionAllowed: true})
	tok, err := (&clientcredentials.Config{ClientID: rs.ID, ClientSecret: secret, TokenURL: e.tokenURL(),
		AuthStyle: oauth2.AuthStyleInHeader}).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&oauth.IntrospectHandler{Provider: authlessProvider{e.Provider}, MaxBytes: 4096})
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rs.ID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "active") {
		t.Fatalf("status %d body %s, want 500 server_error", resp.StatusCode, body)
	}
}
