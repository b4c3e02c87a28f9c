package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestAdminUserRoutesTakeIDsOnly: after alice is deleted, a user can no
// longer register alice's ID as a username, and retrying the delete (admin
// API and CLI) or set-roles on alice's ID finds nobody; usernames are not
// IDs in the admin API. (Before: sign-up accepted the ID as a username,
// and the retried DELETE /admin/users/{alice-id} answered 204, deleting
// that user; PATCH {"roles":["admin"]} would have promoted it.)
func TestAdminUserRoutesTakeIDsOnly(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials&scope=admin",
			"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret)))
		admin := func(method, path, body string) proctest.Response {
			var ct string
			var r *strings.Reader
			if body != "" {
				ct, r = "application/json", strings.NewReader(body)
			} else {
				r = strings.NewReader("")
			}
			return proctest.Do(t, method, srv.AdminURL+path, ct, r, "Authorization", "Bearer "+tok.AccessToken)
		}
		const pw = "purple otter lamp 42"
		aliceID := signup(t, srv.URL, "alice", pw)
		bobID := signup(t, srv.URL, "bob", pw)

		if r := admin(http.MethodDelete, "/admin/users/"+aliceID, ""); r.Status != http.StatusNoContent {
			t.Fatalf("delete alice: %d %s", r.Status, r.Body)
		}
		for _, name := range []string{aliceID, strings.ToUpper(aliceID), strings.ReplaceAll(aliceID, "-", "")} {
			status, body := postJSON(t, srv.URL+"/signup", map[string]string{"username": name, "password": pw})
			if status != http.StatusBadRequest || !strings.Contains(string(body), "invalid_request") {
				t.Errorf("signup %s: %d %s, want 400 invalid_request", name, status, body)
			}
			r := admin(http.MethodPost, "/admin/users", `{"username":"`+name+`","password":"`+pw+`"}`)
			if r.Status != http.StatusBadRequest {
				t.Errorf("admin create %s: %d %s, want 400", name, r.Status, r.Body)
			}
		}
		if r := admin(http.MethodDelete, "/admin/users/"+aliceID, ""); r.Status != http.StatusNotFound {
			t.Errorf("retried delete: %d %s, want 404", r.Status, r.Body)
		}
		if r := admin(http.MethodPatch, "/admin/users/"+aliceID, `{"roles":["admin"]}`); r.Status != http.StatusNotFound {
			t.Errorf("set-roles on a deleted ID: %d %s, want 404", r.Status, r.Body)
		}
		// Usernames are not IDs in the admin API.
		for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
			body := ""
			if m == http.MethodPatch {
				body = `{"roles":["admin"]}`
			}
			if r := admin(m, "/admin/users/bob", body); r.Status != http.StatusNotFound {
				t.Errorf("%s /admin/users/bob: %d %s, want 404", m, r.Status, r.Body)
			}
		}
		// The CLI resolves an ID-shaped argument as an ID only.
		if _, _, err := srv.TryCLI("", "users", "delete", aliceID); err == nil {
			t.Error("CLI users delete of a deleted ID succeeded")
		}
		out := srv.CLI(t, "", "users", "get", "bob", "--output", "json")
		var bob struct{ ID string }
		if err := json.Unmarshal(out, &bob); err != nil || bob.ID != bobID {
			t.Errorf("users get bob = %s, %v", out, err)
		}
		// bob is untouched and still logs in.
		r := admin(http.MethodGet, "/admin/users/"+bobID, "")
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), `"admin"`) {
			t.Errorf("bob after the attempts: %d %s", r.Status, r.Body)
		}
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{
			"grant_type": {"password"}, "client_id": {app.ClientID}, "username": {"bob"}, "password": {pw},
		}.Encode()))
	})
}
