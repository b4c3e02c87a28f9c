package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/server"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// callLog wraps the real store handed to fosite and records which of its
// methods run.
type callLog struct {
	oauth.TokenStore
	mu    sync.Mutex
	calls []string
}

func (l *callLog) log(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, name)
}

func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

func (l *callLog) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	l.log("GetClient")
	return l.TokenStore.GetClient(ctx, id)
}

func (l *callLog) CreateRefreshTokenSession(ctx context.Context, sig, at string, r fosite.Requester) error {
	l.log("CreateRefreshTokenSession")
	return l.TokenStore.CreateRefreshTokenSession(ctx, sig, at, r)
}

func (l *callLog) GetRefreshTokenSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	l.log("GetRefreshTokenSession")
	return l.TokenStore.GetRefreshTokenSession(ctx, sig, s)
}

func (l *callLog) RotateRefreshToken(ctx context.Context, id, sig string) error {
	l.log("RotateRefreshToken")
	return l.TokenStore.RotateRefreshToken(ctx, id, sig)
}

func (l *callLog) RevokeRefreshToken(ctx context.Context, id string) error {
	l.log("RevokeRefreshToken")
	return l.TokenStore.RevokeRefreshToken(ctx, id)
}

func (l *callLog) RevokeAccessToken(ctx context.Context, id string) error {
	l.log("RevokeAccessToken")
	return l.TokenStore.RevokeAccessToken(ctx, id)
}

func (l *callLog) BeginTX(ctx context.Context) (context.Context, error) {
	l.log("BeginTX")
	return l.TokenStore.BeginTX(ctx)
}

// introspector returns a function introspecting tokens at e as rs.
func introspector(t *testing.T, e *env, rs *clients.Client, secret string) func(token string) map[string]any {
	return func(token string) map[string]any {
		t.Helper()
		status, _, out := e.post(t, "/oauth2/introspect", url.Values{"token": {token}}, rs.ID, secret)
		if status != http.StatusOK || out == nil {
			t.Fatalf("introspection: status %d, %v", status, out)
		}
		return out
	}
}

// TestAccessTokensAreStateless: issuing a client_credentials token and
// introspecting any access token touch no token storage (issue 9): fosite
// asks the store for the client only. A password grant writes its refresh
// token row, and nothing for the access token.
func TestAccessTokensAreStateless(t *testing.T) {
	for name, dsn := range backends {
		t.Run(name, func(t *testing.T) {
			calls := &callLog{}
			e := newEnv(t, servertest.Options{DSN: dsn(t), FositeStore: func(s oauth.TokenStore) oauth.TokenStore {
				calls.TokenStore = s
				return calls
			}})
			e.user(t, "rita")
			rs, secret := e.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, Audience: []string{api}, IntrospectionAllowed: true})
			app, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
			cc := &clientcredentials.Config{ClientID: rs.ID, ClientSecret: secret, TokenURL: e.tokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
			introspect := introspector(t, e, rs, secret)

			calls.take()
			tok, err := cc.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := calls.take(); !slices.Equal(got, []string{"GetClient"}) {
				t.Errorf("client_credentials token: store calls %v, want only GetClient", got)
			}
			user, err := e.conf(app, "", oauth2.AuthStyleInParams).PasswordCredentialsToken(t.Context(), "rita", "purple otter lamp 42")
			if err != nil {
				t.Fatal(err)
			}
			if got := calls.take(); slices.Contains(got, "RevokeAccessToken") || !slices.Contains(got, "CreateRefreshTokenSession") {
				t.Errorf("password grant: store calls %v", got)
			}
			for _, at := range []string{tok.AccessToken, user.AccessToken, tok.AccessToken} {
				if got := introspect(at); got["active"] != true {
					t.Fatalf("introspection: %v", got)
				}
				// The caller's client and the token's: nothing else.
				if got := calls.take(); !slices.Equal(got, []string{"GetClient", "GetClient"}) {
					t.Errorf("introspection: store calls %v, want GetClient twice", got)
				}
			}
		})
	}
}

// TestRevocationEndsAccessTokens: access tokens are not stored, yet every
// way of ending a grant makes introspection report its access tokens
// inactive at once, and leaves other grants alone: revoking the refresh
// token (the access tokens of every earlier refresh included), revoking an
// access token, refresh-token reuse, the user's password change, disabling,
// deletion, and deleting the client.
func TestRevocationEndsAccessTokens(t *testing.T) {
	for name, dsn := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, servertest.Options{DSN: dsn(t)})
			ctx := t.Context()
			rs, secret := e.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, Audience: []string{api}, IntrospectionAllowed: true})
			app, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
			conf := e.conf(app, "", oauth2.AuthStyleInParams)
			introspect := introspector(t, e, rs, secret)
			login := func(name string) *oauth2.Token {
				t.Helper()
				tok, err := conf.PasswordCredentialsToken(ctx, name, "purple otter lamp 42")
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			refresh := func(tok *oauth2.Token) (*oauth2.Token, error) {
				return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			}
			revoke := func(token, clientID string) {
				t.Helper()
				if status, _, body := e.post(t, "/oauth2/revoke", url.Values{"token": {token}, "client_id": {clientID}}); status != http.StatusOK {
					t.Fatalf("revoke: %d %v", status, body)
				}
			}
			active := func(what string, want bool, tokens ...string) {
				t.Helper()
				for _, tok := range tokens {
					if got := introspect(tok); got["active"] != want {
						t.Errorf("%s: introspection %v, want active %v", what, got, want)
					}
				}
			}
			users := map[string]*identity.User{}
			for _, n := range []string{"ann", "ben", "cat", "dan", "eve", "fay"} {
				users[n] = e.user(t, n)
			}

			t.Run("refresh token revoked", func(t *testing.T) {
				first := login("ann")
				second, err := refresh(first)
				if err != nil {
					t.Fatal(err)
				}
				other := login("ann")
				active("before", true, first.AccessToken, second.AccessToken, other.AccessToken)
				revoke(second.RefreshToken, app.ID)
				active("revoked grant", false, first.AccessToken, second.AccessToken)
				active("another grant of the user", true, other.AccessToken)
			})
			t.Run("access token revoked", func(t *testing.T) {
				tok := login("ben")
				revoke(tok.AccessToken, app.ID)
				active("revoked", false, tok.AccessToken)
				if _, err := refresh(tok); rfcCode(t, err) != "invalid_grant" {
					t.Fatal("the grant's refresh token survived revoking its access token")
				}
			})
			t.Run("refresh token reused", func(t *testing.T) {
				tok := login("cat")
				next, err := refresh(tok)
				if err != nil {
					t.Fatal(err)
				}
				active("rotation keeps the earlier access token until exp", true, tok.AccessToken)
				// Its successor used, the first token presented again is a
				// replay whatever the reuse grace (newEnv: 10s). (The
				// clock moves so that the two rotations are ordered.)
				e.clock.Advance(time.Second)
				last, err := refresh(next)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := refresh(tok); rfcCode(t, err) != "invalid_grant" {
					t.Fatal("reuse accepted")
				}
				active("after reuse", false, tok.AccessToken, next.AccessToken, last.AccessToken)
			})
			for _, tt := range []struct {
				user   string
				change func(u *identity.User) error
			}{
				{"dan", func(u *identity.User) error {
					pw := "another long passphrase 7"
					_, err := e.Users.Update(ctx, u.ID, identity.Change{Password: &pw})
					return err
				}},
				{"eve", func(u *identity.User) error {
					yes := true
					_, err := e.Users.Update(ctx, u.ID, identity.Change{Disabled: &yes})
					return err
				}},
				{"fay", func(u *identity.User) error { return e.Users.Delete(ctx, u.ID) }},
			} {
				t.Run("user change "+tt.user, func(t *testing.T) {
					a, b := login(tt.user), login(tt.user)
					bystander := login("ann")
					if err := tt.change(users[tt.user]); err != nil {
						t.Fatal(err)
					}
					active("the user's grants", false, a.AccessToken, b.AccessToken)
					active("another user's grant", true, bystander.AccessToken)
				})
			}
			t.Run("password change, then a new login", func(t *testing.T) {
				pw := "another long passphrase 7"
				if _, err := e.Users.Update(ctx, users["ann"].ID, identity.Change{Password: &pw}); err != nil {
					t.Fatal(err)
				}
				tok, err := conf.PasswordCredentialsToken(ctx, "ann", pw)
				if err != nil {
					t.Fatal(err)
				}
				active("a login after the change", true, tok.AccessToken)
			})
			t.Run("client deleted", func(t *testing.T) {
				other, otherSecret := e.client(t, clients.Spec{Name: "other", GrantTypes: []string{"client_credentials"}, Audience: []string{api}})
				tok, err := (&clientcredentials.Config{ClientID: other.ID, ClientSecret: otherSecret, TokenURL: e.tokenURL()}).Token(ctx)
				if err != nil {
					t.Fatal(err)
				}
				active("before", true, tok.AccessToken)
				if err := e.Clients.Delete(ctx, other.ID); err != nil {
					t.Fatal(err)
				}
				active("client deleted", false, tok.AccessToken)
			})
		})
	}
}

// TestRevocationsPerClientLimited: each revocation of a client_credentials
// access token is kept in memory by every replica until the token would
// have expired, so a client cannot revoke its own tokens faster than
// rate_limit.revoke_per_client (burst ten times): over it, 429 with
// Retry-After, and the token stays active. Before the limit, a client
// minting and revoking tokens in a loop grew every replica's memory
// without bound (red-team finding).
func TestRevocationsPerClientLimited(t *testing.T) {
	e := newEnv(t, servertest.Options{Server: func(o *server.Options) { o.RevokePerClient = 1 }})
	rs, secret := e.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, Audience: []string{api}, IntrospectionAllowed: true})
	svc, svcSecret := e.client(t, clients.Spec{Name: "svc", GrantTypes: []string{"client_credentials"}, Audience: []string{api}})
	introspect := introspector(t, e, rs, secret)
	cc := &clientcredentials.Config{ClientID: svc.ID, ClientSecret: svcSecret, TokenURL: e.tokenURL()}
	revoke := func(token string) (int, http.Header) {
		status, header, _ := e.post(t, "/oauth2/revoke", url.Values{"token": {token}}, svc.ID, svcSecret)
		return status, header
	}
	var limited *oauth2.Token
	for i := range 12 {
		tok, err := cc.Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		status, header := revoke(tok.AccessToken)
		if status == http.StatusTooManyRequests {
			if i < 10 || header.Get("Retry-After") == "" {
				t.Fatalf("revocation %d: 429 (Retry-After %q); want the burst of 10 first, then 429 with Retry-After", i+1, header.Get("Retry-After"))
			}
			limited = tok
			break
		}
		if status != http.StatusOK || introspect(tok.AccessToken)["active"] != false {
			t.Fatalf("revocation %d: %d", i+1, status)
		}
	}
	if limited == nil {
		t.Fatal("12 revocations in a burst, none limited")
	}
	if got := introspect(limited.AccessToken); got["active"] != true {
		t.Fatalf("a refused revocation revoked the token: %v", got)
	}
}
