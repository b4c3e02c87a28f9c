package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// TestRevocationsCommittedOutOfOrder: two replicas on one MariaDB. A
// subject revocation at A (one INSERT … SELECT of three grants, IDs taken
// from auto-increment) is still uncommitted when a later revocation at B
// commits with a higher ID and B's list reads it. Once A commits, B's next
// poll must find A's three grants below the ID it has already seen: none
// is lost.
func TestRevocationsCommittedOutOfOrder(t *testing.T) {
	dsn := storagetest.MySQLDSN(t)
	a := newEnv(t, servertest.Options{DSN: dsn})
	b := newEnv(t, servertest.Options{DSN: dsn})
	u := a.user(t, "lee")
	rs, rsSecret := a.client(t, clients.Spec{Name: "rs", GrantTypes: []string{"client_credentials"}, Audience: []string{api}, IntrospectionAllowed: true})
	app, _ := a.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	conf := a.conf(app, "", oauth2.AuthStyleInParams)
	var tokens []string
	for range 3 {
		tok, err := conf.PasswordCredentialsToken(t.Context(), "lee", "purple otter lamp 42")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok.AccessToken)
	}
	atB := introspector(t, b, rs, rsSecret)
	for _, tok := range tokens {
		if got := atB(tok); got["active"] != true {
			t.Fatalf("before: %v", got)
		}
	}

	tx, err := a.Store.BeginTX(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store.RevokeSubject(tx, u.ID); err != nil {
		t.Fatal(err)
	}

	// Meanwhile B revokes a client_credentials token and reads it.
	cc, err := (&clientcredentials.Config{ClientID: rs.ID, ClientSecret: rsSecret, TokenURL: b.tokenURL(), AuthStyle: oauth2.AuthStyleInHeader}).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, b.Issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {cc.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rs.ID, rsSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := atB(cc.AccessToken); resp.StatusCode != http.StatusOK || got["active"] != false {
		t.Fatalf("revocation at B: %d, then %v", resp.StatusCode, got)
	}

	if err := a.Store.Commit(tx); err != nil {
		t.Fatal(err)
	}
	rows, err := a.Store.RevocationsAfter(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0].ID > rows[3].ID {
		t.Fatalf("revocations: %+v", rows)
	}
	_, ccClaims := claimsOf(t, cc.AccessToken)
	if rows[len(rows)-1].GrantID != ccClaims["sid"] {
		t.Fatalf("B's revocation does not have the highest ID, the test did not commit out of order: %+v", rows)
	}
	if err := b.Revocations.Sync(t.Context()); err != nil { // B's next poll
		t.Fatal(err)
	}
	for i, tok := range tokens {
		if got := atB(tok); got["active"] != false {
			t.Errorf("grant %d of the subject revoked at A, committed after B read a later revocation: %v at B", i, got)
		}
	}
}
