package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestRefreshScope checks RFC 6749 §6 and §3.3/§5.1 at the token handler:
// a refresh request's scope narrows the new access token only, a scope
// outside the grant is invalid_scope, and a token without scope has no
// scope member or claim.
func TestRefreshScope(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	e.user(t, "dora")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Scopes: []string{"read", "write"}, Audience: []string{api}})
	bare, _ := e.client(t, clients.Spec{Name: "bare", Public: true, Audience: []string{api}})
	post := func(form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := http.PostForm(e.tokenURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	login := func(client, scope string) map[string]any {
		t.Helper()
		status, body := post(url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {"dora"},
			"password": {"purple otter lamp 42"}, "scope": {scope}})
		if status != http.StatusOK {
			t.Fatalf("password grant: %d %v", status, body)
		}
		return body
	}
	refresh := func(client, rt, scope string) (int, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}}
		if scope != "" {
			form.Set("scope", scope)
		}
		return post(form)
	}
	scopes := func(body map[string]any) (resp, claim any) {
		_, cl := claimsOf(t, body["access_token"].(string))
		return body["scope"], cl["scope"]
	}

	first := login(c.ID, "read write")
	for _, tc := range []struct{ ask, want string }{{"read", "read"}, {"", "read write"}, {"write read write", "write read"}, {"write", "write"}} {
		status, body := refresh(c.ID, first["refresh_token"].(string), tc.ask)
		if status != http.StatusOK {
			t.Fatalf("§6 refresh asking %q: %d %v", tc.ask, status, body)
		}
		if resp, claim := scopes(body); resp != tc.want || claim != tc.want {
			t.Errorf("§6 refresh asking %q: response %v, claim %v, want %q", tc.ask, resp, claim, tc.want)
		}
		first = body // the next refresh uses the new refresh token
	}
	if status, body := refresh(c.ID, first["refresh_token"].(string), "read admin"); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("§6 scope outside the grant: %d %v, want invalid_scope", status, body)
	}

	empty := login(bare.ID, "")
	if resp, claim := scopes(empty); resp != nil || claim != nil {
		t.Errorf("§3.3 no scope: response %v, claim %v; want neither", resp, claim)
	}
	if _, body := refresh(bare.ID, empty["refresh_token"].(string), ""); body["scope"] != nil {
		t.Errorf("§3.3 no scope after refresh: %v", body)
	}
}
