package adminapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestAdminScopeWithdrawn: a client's admin token stops working as soon as
// the client is no longer registered for scope admin, not at exp.
// (Before, red team: after PUT /admin/clients/{id} with scope "read" the
// client's earlier admin token still answered 200 until it expired.)
func TestAdminScopeWithdrawn(t *testing.T) {
	e := newEnv(t)
	c, secret, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "ops", GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{adminapi.Scope, "read"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, c.ID, secret, adminapi.Scope)
	if r := e.doWith(t, "Bearer "+tok, http.MethodGet, "/admin/keys", nil); r.status != http.StatusOK {
		t.Fatalf("before: status %d body %s", r.status, r.body)
	}
	r := e.do(t, http.MethodPut, "/admin/clients/"+c.ID, map[string]any{
		"client_name": "ops", "grant_types": []string{clients.GrantClientCredentials}, "scope": "read",
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

// TestClientRepresentationRoundTrip: a client's representation read with
// GET is accepted back unchanged by PUT (RFC 7592 §2.2: the body carries
// client_id), and changes nothing; a client_id naming another client and
// read-only members on create are refused. (Before, red team: the GET body
// sent back got 400 "unknown field".)
func TestClientRepresentationRoundTrip(t *testing.T) {
	e := newEnv(t)
	c, _, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "web", GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken}, Scopes: []string{"read"},
		Audience: []string{api}, CORSOrigins: []string{"https://web.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := e.do(t, http.MethodGet, "/admin/clients/"+c.ID, nil)
	if got.status != http.StatusOK {
		t.Fatalf("get: %d %s", got.status, got.body)
	}
	var rep map[string]any
	if err := json.Unmarshal(got.body, &rep); err != nil {
		t.Fatal(err)
	}
	put := e.do(t, http.MethodPut, "/admin/clients/"+c.ID, rep)
	if put.status != http.StatusOK {
		t.Fatalf("PUT of the GET representation: %d %s", put.status, put.body)
	}
	var after map[string]any
	_ = json.Unmarshal(put.body, &after)
	for k, v := range rep {
		if k == "updated_at" {
			continue
		}
		if fmt.Sprint(after[k]) != fmt.Sprint(v) {
			t.Errorf("%s changed from %v to %v", k, v, after[k])
		}
	}
	rep["client_id"] = e.adminID
	wantError(t, e.do(t, http.MethodPut, "/admin/clients/"+c.ID, rep), http.StatusBadRequest, "invalid_request")
	wantError(t, e.do(t, http.MethodPost, "/admin/clients", map[string]any{"client_name": "x", "client_id": "mine"}), http.StatusBadRequest, "invalid_request")
}
