package admin_test

import (
	"net/http"
	"testing"

	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/admin"
)

// TestAdminScopeWithdrawn: a client's admin token stops working as soon as
// the client is no longer registered for scope admin, not at exp.
// (Before, red team: after PUT /admin/clients/{id} with scope "read" the
// client's earlier admin token still answered 200 until it expired.)
func TestAdminScopeWithdrawn(t *testing.T) {
	e := newEnv(t)
	c, secret, err := e.clients.Create(t.Context(), oauth.ClientSpec{
		Name: "ops", GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{admin.Scope, "read"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, c.ID, secret, admin.Scope)
	if r := e.doWith(t, "Bearer "+tok, http.MethodGet, "/admin/keys", nil); r.status != http.StatusOK {
		t.Fatalf("before: status %d body %s", r.status, r.body)
	}
	r := e.do(t, http.MethodPut, "/admin/clients/"+c.ID, map[string]any{
		"client_name": "ops", "grant_types": []string{oauth.GrantClientCredentials}, "scope": "read",
		"token_endpoint_auth_method": c.AuthMethod,
	})
	if r.status != http.StatusOK {
		t.Fatalf("withdraw scope admin: status %d body %s", r.status, r.body)
	}
	r = e.doWith(t, "Bearer "+tok, http.MethodGet, "/admin/keys", nil)
	wantError(t, r, http.StatusForbidden, "forbidden")
	// The admin client itself is unaffected.
	if r := e.do(t, http.MethodGet, "/admin/keys", nil); r.status != http.StatusOK {
		t.Errorf("the admin client after another client's change: status %d body %s", r.status, r.body)
	}
}
