package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// refreshGrant redeems refreshToken for the public client clientID.
func refreshGrant(t *testing.T, srv *proctest.Server, clientID, refreshToken string) proctest.Response {
	t.Helper()
	return proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{
		"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {refreshToken},
	}.Encode())
}

// wantAdminError fails the test unless r is an admin API JSON error with
// status and code.
func wantAdminError(t *testing.T, what string, r proctest.Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
	if got := r.JSON(t)["error"]; got != code {
		t.Fatalf("%s: error %v, want %s: %s", what, got, code, r.Body)
	}
}

// TestCLIUsersSetPassword: `users set-password U --password-stdin` and
// PATCH /admin/users/{id} {"password"} against the real binary on both
// backends: the password policy applies (a refused password changes
// nothing), the old password stops working and the new one works, and the
// user's refresh tokens are revoked, as on any password change.
func TestCLIUsersSetPassword(t *testing.T) {
	const first, second, third = "purple otter lamp 42", "green walrus desk 77", "seven silver spoons 19"
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password", "--grant-type", "refresh_token")
		srv.CreateUser(t, "alice", first)
		login := proctest.MustToken(t, passwordGrant(t, srv, app.ClientID, "alice", first, ""))

		for _, tc := range []struct {
			name, stdin string
			args        []string
			want        string
		}{
			{"without --password-stdin", second + "\n", []string{"users", "set-password", "alice"}, "--password-stdin"},
			{"empty stdin", "", []string{"users", "set-password", "alice", "--password-stdin"}, "no password"},
			{"policy: too short", "short\n", []string{"users", "set-password", "alice", "--password-stdin"}, "at least 12"},
			{"policy: the username", "alice alice alice\n", []string{"users", "set-password", "alice", "--password-stdin"}, "username"},
			{"unknown user", second + "\n", []string{"users", "set-password", "nobody", "--password-stdin"}, "not found"},
		} {
			stdout, stderr, err := srv.TryCLI(tc.stdin, tc.args...)
			if err == nil || len(stdout) != 0 || !strings.Contains(string(stderr), tc.want) {
				t.Errorf("%s: err %v stdout %q stderr %q, want a failure naming %q", tc.name, err, stdout, stderr, tc.want)
			}
		}
		// Nothing changed by the refused commands.
		if r := passwordGrant(t, srv, app.ClientID, "alice", first, ""); r.Status != http.StatusOK {
			t.Fatalf("old password after refused set-password: %d %s", r.Status, r.Body)
		}

		var u struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		}
		out := srv.CLI(t, second+"\n", "users", "set-password", "alice", "--password-stdin", "--output", "json")
		if err := json.Unmarshal(out, &u); err != nil || u.Username != "alice" || strings.Contains(string(out), "argon2") {
			t.Fatalf("set-password output %s: %v", out, err)
		}
		wantOAuthError(t, passwordGrant(t, srv, app.ClientID, "alice", first, ""), http.StatusBadRequest, "invalid_grant")
		if r := passwordGrant(t, srv, app.ClientID, "alice", second, ""); r.Status != http.StatusOK {
			t.Fatalf("new password: %d %s", r.Status, r.Body)
		}
		wantOAuthError(t, refreshGrant(t, srv, app.ClientID, login.RefreshToken), http.StatusBadRequest, "invalid_grant")

		// The admin API's body for the same change.
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		login = proctest.MustToken(t, passwordGrant(t, srv, app.ClientID, "alice", second, ""))
		wantAdminError(t, "PATCH weak password", adminCall(t, srv, admin, http.MethodPatch, "/admin/users/"+u.ID, map[string]any{"password": "short"}),
			http.StatusBadRequest, "invalid_request")
		if r := adminCall(t, srv, admin, http.MethodPatch, "/admin/users/"+u.ID, map[string]any{"password": third}); r.Status != http.StatusOK ||
			strings.Contains(string(r.Body), "argon2") || strings.Contains(string(r.Body), third) {
			t.Fatalf("PATCH password: %d %s", r.Status, r.Body)
		}
		wantOAuthError(t, passwordGrant(t, srv, app.ClientID, "alice", second, ""), http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, refreshGrant(t, srv, app.ClientID, login.RefreshToken), http.StatusBadRequest, "invalid_grant")
		if r := passwordGrant(t, srv, app.ClientID, "alice", third, ""); r.Status != http.StatusOK {
			t.Fatalf("password set through the admin API: %d %s", r.Status, r.Body)
		}
	})
}
