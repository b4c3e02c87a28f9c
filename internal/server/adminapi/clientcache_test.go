package adminapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/clientcache"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// wantInvalidClient fails unless a client_credentials token request with
// id and secret is refused with invalid_client (RFC 6749 §5.2).
func (e *env) wantInvalidClient(t *testing.T, what, id, secret string) {
	t.Helper()
	_, err := e.tokenErr(t, id, secret, "read")
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "invalid_client" {
		t.Fatalf("%s: token request got %v, want invalid_client", what, err)
	}
}

// TestAdminAPIChangesSkipTheClientCache: with an hour-long cache TTL, a
// client changed through the admin API is seen by the token endpoint at
// once: a rotated-out secret, a withdrawn grant type and a deleted client
// are refused on the next request. (With a cache that the admin API's
// writes do not invalidate, each would still work for the TTL.)
func TestAdminAPIChangesSkipTheClientCache(t *testing.T) {
	e := newEnvWith(t, &clientcache.Options{TTL: time.Hour})
	c, secret, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "svc", GrantTypes: []string{clients.GrantClientCredentials, clients.GrantRefreshToken}, Scopes: []string{"read"}, Audience: []string{api},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.token(t, c.ID, secret, "read") // cached now

	r := e.do(t, http.MethodPost, "/admin/clients/"+c.ID+"/secret", nil)
	newSecret, _ := decode[map[string]any](t, r)["client_secret"].(string)
	e.wantInvalidClient(t, "old secret after rotation", c.ID, secret)
	e.token(t, c.ID, newSecret, "read")

	r = e.do(t, http.MethodPut, "/admin/clients/"+c.ID, map[string]any{
		"client_name": "svc", "grant_types": []string{"refresh_token"}, "scope": "read", "audience": []string{api},
	})
	if r.status != http.StatusOK {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	_, err = e.tokenErr(t, c.ID, newSecret, "read")
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "unauthorized_client" {
		t.Fatalf("client_credentials after withdrawing it: %v, want unauthorized_client", err)
	}

	if r := e.do(t, http.MethodDelete, "/admin/clients/"+c.ID, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	e.wantInvalidClient(t, "deleted client", c.ID, newSecret)
}

// TestOtherProcessChangesWithinTheCacheTTL: a change that does not go
// through this server (another replica or the CLI: here a clients.Service
// on the bare store) is honoured once the cached entry is client_cache.ttl
// old, the documented bound.
func TestOtherProcessChangesWithinTheCacheTTL(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	e := newEnvWith(t, &clientcache.Options{TTL: time.Second, Now: clock.Now})
	other := &clients.Service{Store: e.Store}
	c, secret, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "svc", GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{"read"}, Audience: []string{api},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.token(t, c.ID, secret, "read") // cached now

	_, newSecret, err := other.RotateSecret(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	e.wantInvalidClient(t, "old secret a TTL after another process rotated it", c.ID, secret)
	e.token(t, c.ID, newSecret, "read")

	if err := other.Delete(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	e.wantInvalidClient(t, "a TTL after another process deleted it", c.ID, newSecret)

	// A public client deleted by another process while cached still
	// authenticates, but its login's refresh token cannot be stored (its
	// row would refer to no client): no token, and the failure drops the
	// entry, so the next login is refused without waiting for the TTL.
	if _, err := e.Users.Signup(t.Context(), "alice", userPassword, nil); err != nil {
		t.Fatal(err)
	}
	app, _, err := e.Clients.Create(t.Context(), clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: app.ID, Endpoint: oauth2.Endpoint{TokenURL: e.Public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	if _, err := conf.PasswordCredentialsToken(t.Context(), "alice", userPassword); err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(t.Context(), app.ID); err != nil {
		t.Fatal(err)
	}
	if tok, err := conf.PasswordCredentialsToken(t.Context(), "alice", userPassword); err == nil {
		t.Fatalf("a client deleted by another process got a refresh token: %s", tok.RefreshToken)
	}
	_, err = conf.PasswordCredentialsToken(t.Context(), "alice", userPassword)
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "invalid_client" {
		t.Fatalf("login after a failed one for a client another process deleted: %v, want invalid_client", err)
	}
}

// TestUnknownClientIDsDoNotFillTheClientCache: requests naming random
// client IDs (an attacker's) take no memory in the cache; the clients
// that exist do.
func TestUnknownClientIDsDoNotFillTheClientCache(t *testing.T) {
	e := newEnvWith(t, &clientcache.Options{TTL: time.Hour, MaxEntries: 4})
	before := e.ClientCache.Len() // the admin client, after its token
	for i := range 200 {
		e.wantInvalidClient(t, "unknown client", fmt.Sprintf("random-%d", i), "x")
	}
	if n := e.ClientCache.Len(); n != before {
		t.Fatalf("%d cache entries after 200 unknown client IDs, want %d", n, before)
	}
	for i := range 10 {
		c, secret, err := e.Clients.Create(t.Context(), clients.Spec{
			Name: fmt.Sprint("svc", i), GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{"read"}, Audience: []string{api},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.token(t, c.ID, secret, "read")
	}
	if n := e.ClientCache.Len(); n > 4 {
		t.Fatalf("%d cache entries after 10 clients, cap 4", n)
	}
}
