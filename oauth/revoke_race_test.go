package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestRevocationDuringRefreshEndsTheGrant: RFC 7009 revocation of a grant
// (by its access token or its refresh token) while a refresh of the same
// grant is between rotating the old refresh token and committing the new
// one. Whichever commits first, the grant must be dead afterwards: the
// refresh token the refresh issued must neither refresh nor introspect as
// active, and its access token must be inactive. An attacker holding a
// stolen refresh token who refreshes in a loop wins this race against the
// victim's revocation. (Found by red-teaming issue 9: on MariaDB,
// RevokeRefreshToken's UPDATE under READ COMMITTED skips the refresh's
// uncommitted new row, as RevokeSubject's did before lockRefreshOwner; the
// revocation row hides the grant's access tokens only until it expires,
// access_token_ttl + 1m later, after which the surviving refresh token
// mints active ones again.)
func TestRevocationDuringRefreshEndsTheGrant(t *testing.T) {
	for name, dsn := range raceBackends {
		for _, by := range []string{"access token", "refresh token"} {
			t.Run(name+"/"+by, func(t *testing.T) {
				hooked := &refreshHook{}
				e := newEnv(t, servertest.Options{DSN: dsn(t), FositeStore: func(s oauth.TokenStore) oauth.TokenStore {
					hooked.TokenStore = s
					return hooked
				}})
				e.user(t, "victim")
				rs, secret := e.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, Audience: []string{api}, IntrospectionAllowed: true})
				c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
				conf := e.conf(c, "", oauth2.AuthStyleInParams)
				introspect := introspector(t, e, rs, secret)
				// Whether the revocation's scan meets the new row before or
				// after the old one depends on their random signatures: a
				// few rounds make the outcome certain.
				for round := range 8 {
					tok, err := conf.PasswordCredentialsToken(t.Context(), "victim", "purple otter lamp 42")
					if err != nil {
						t.Fatal(err)
					}
					token := tok.AccessToken
					if by == "refresh token" {
						token = tok.RefreshToken
					}
					revoked := make(chan int, 1)
					hooked.mu.Lock()
					hooked.hook = func() {
						go func() {
							resp, err := http.PostForm(e.Issuer+"/oauth2/revoke", url.Values{"token": {token}, "client_id": {c.ID}})
							if err != nil {
								revoked <- 0
								return
							}
							resp.Body.Close()
							revoked <- resp.StatusCode
						}()
						// Let the revocation reach the point where it waits
						// for the refresh transaction (a row lock on MySQL,
						// the one connection on SQLite), then let the
						// refresh commit.
						time.Sleep(200 * time.Millisecond)
					}
					hooked.mu.Unlock()
					next, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
					if status := <-revoked; status != http.StatusOK {
						t.Fatalf("revocation: status %d", status)
					}
					if err != nil {
						continue // the refresh lost the race: correct
					}
					if got := introspect(next.AccessToken); got["active"] != false {
						t.Errorf("round %d: the access token issued during the revocation introspects as %v", round, got)
					}
					if got := introspect(next.RefreshToken); got["active"] != false {
						t.Errorf("round %d: the refresh token issued during the revocation introspects as %v", round, got)
					}
					if _, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); err == nil {
						t.Fatalf("round %d: the refresh token issued during the revocation still works after it", round)
					}
				}
			})
		}
	}
}
