package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage"
)

// TestCLIRevocationOutlivesServerTokens: `portcullis users disable` (or
// delete) run without the server's access_token_ttl — the server runs
// with PORTCULLIS_ACCESS_TOKEN_TTL=1h in its unit file, the operator runs
// the command from a shell with the default 15m — must still end the
// user's access tokens for as long as they live. (Found by red-teaming
// issue 9: the command recorded the revocation with its own configured
// TTL, so every replica forgot it 16 minutes later, and the disabled
// user's access token, valid for another 44 minutes, introspected as
// active again.)
func TestCLIRevocationOutlivesServerTokens(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "p.db")
	clock := testkit.NewClock(time.Now())
	e := servertest.New(t, servertest.Options{
		DSN:            dsn,
		AccessTokenTTL: time.Hour,
		Storage:        storage.Options{AccessTokenTTL: time.Hour, Now: clock.Now},
	})
	if _, err := e.Users.Signup(t.Context(), "bob", "purple otter lamp 42", nil); err != nil {
		t.Fatal(err)
	}
	app, _, err := e.Clients.Create(t.Context(), clients.Spec{Name: "app", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: app.ID, Endpoint: oauth2.Endpoint{TokenURL: e.Issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := conf.PasswordCredentialsToken(t.Context(), "bob", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	active := func() bool {
		t.Helper()
		if err := e.Revocations.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, _, err := e.Provider.IntrospectToken(t.Context(), tok.AccessToken, fosite.AccessToken, oauth.NewSession())
		return err == nil
	}
	if !active() {
		t.Fatal("a fresh token is not active")
	}

	cli := &cliEnv{dsn: dsn, environ: []string{"PORTCULLIS_DSN=" + dsn}} // access_token_ttl: the default
	cli.ok(t, "", "users", "disable", "bob")
	if active() {
		t.Fatal("the disabled user's token is active")
	}
	// 20 minutes on: the token has 40 minutes to live.
	clock.Advance(20 * time.Minute)
	if active() {
		t.Fatal("the disabled user's token is active again 20 minutes later, 40 minutes before its exp")
	}
}
