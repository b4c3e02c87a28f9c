package oauth_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage"
)

// TestRevokeAccessTokenRefusals: an access token (stateless, so revoked by
// RevokeHandler itself, not fosite) presented at /oauth2/revoke without
// the owning client's valid credentials, by another client, or after its
// exp revokes nothing: its grant stays alive (README "Clients", RFC 7009
// §2.1, §2.2).
func TestRevokeAccessTokenRefusals(t *testing.T) {
	for name, dsn := range raceBackends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, servertest.Options{DSN: dsn(t)})
			e.user(t, "ivy")
			rs, rsSecret := e.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, Audience: []string{api}, IntrospectionAllowed: true})
			svc, svcSecret := e.client(t, clients.Spec{Name: "svc", GrantTypes: []string{"client_credentials"}, Audience: []string{api}})
			pub, _ := e.client(t, clients.Spec{Name: "pub", Public: true, Audience: []string{api}})
			other, _ := e.client(t, clients.Spec{Name: "other", Public: true, Audience: []string{api}})
			introspect := introspector(t, e, rs, rsSecret)
			svcTok, err := (&clientcredentials.Config{ClientID: svc.ID, ClientSecret: svcSecret, TokenURL: e.tokenURL(), AuthStyle: oauth2.AuthStyleInHeader}).Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			userTok, err := e.conf(pub, "", oauth2.AuthStyleInParams).PasswordCredentialsToken(t.Context(), "ivy", "purple otter lamp 42")
			if err != nil {
				t.Fatal(err)
			}
			revoke := func(form url.Values, basic ...string) (int, string) {
				t.Helper()
				status, _, body := e.post(t, "/oauth2/revoke", form, basic...)
				code, _ := body["error"].(string)
				return status, code
			}
			for _, tt := range []struct {
				name       string
				form       url.Values
				basic      []string
				status     int
				error      string
				stillAlive string
			}{
				{"no client credentials", url.Values{"token": {svcTok.AccessToken}}, nil, 401, "invalid_client", svcTok.AccessToken},
				{"wrong secret", url.Values{"token": {svcTok.AccessToken}}, []string{svc.ID, "wrong"}, 401, "invalid_client", svcTok.AccessToken},
				{"public client id of the confidential owner", url.Values{"token": {svcTok.AccessToken}, "client_id": {svc.ID}}, nil, 401, "invalid_client", svcTok.AccessToken},
				{"another client's token", url.Values{"token": {userTok.AccessToken}, "client_id": {other.ID}}, nil, 400, "unauthorized_client", userTok.AccessToken},
				{"another confidential client's token", url.Values{"token": {svcTok.AccessToken}}, []string{rs.ID, rsSecret}, 400, "unauthorized_client", svcTok.AccessToken},
			} {
				status, code := revoke(tt.form, tt.basic...)
				if status != tt.status || code != tt.error {
					t.Errorf("%s: %d %q, want %d %q", tt.name, status, code, tt.status, tt.error)
				}
				if got := introspect(tt.stillAlive); got["active"] != true {
					t.Errorf("%s: the token was revoked: %v", tt.name, got)
				}
			}
			if _, err := e.conf(pub, "", oauth2.AuthStyleInParams).TokenSource(t.Context(), &oauth2.Token{RefreshToken: userTok.RefreshToken}).Token(); err != nil {
				t.Errorf("the grant's refresh token after refused revocations: %v", err)
			}
		})
	}
}

// TestExpiredAccessTokenRevokesNothing: an access token past its exp is
// an invalid token at /oauth2/revoke: 200, and its grant (refresh token)
// is left alone, even when presented by its own client.
func TestExpiredAccessTokenRevokesNothing(t *testing.T) {
	for name, dsn := range raceBackends {
		t.Run(name, func(t *testing.T) {
			// The token endpoint's clock runs an hour behind: its tokens
			// are born expired by the wall clock the JWT checks read.
			clock := testkit.NewClock(time.Now().Add(-time.Hour))
			e := &env{Env: servertest.New(t, servertest.Options{DSN: dsn(t), Storage: storage.Options{Now: clock.Now}}), clock: clock}
			e.user(t, "jay")
			pub, _ := e.client(t, clients.Spec{Name: "pub", Public: true, Audience: []string{api}})
			conf := e.conf(pub, "", oauth2.AuthStyleInParams)
			tok, err := conf.PasswordCredentialsToken(t.Context(), "jay", "purple otter lamp 42")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.PostForm(e.Issuer+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {pub.ID}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoking an expired access token: %d, want 200", resp.StatusCode)
			}
			if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
				t.Fatalf("an expired access token revoked its grant: %v", err)
			}
		})
	}
}
