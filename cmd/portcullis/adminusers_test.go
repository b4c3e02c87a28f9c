package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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

// lockJSON is the lockout part of the admin API's and the CLI's
// representation of a user.
type lockJSON struct {
	ID             string     `json:"id"`
	Username       string     `json:"username"`
	Locked         *bool      `json:"locked"`
	LockedUntil    *time.Time `json:"locked_until"`
	LockedNetworks *int       `json:"locked_networks"`
}

// wantLock fails the test unless u shows locked, with locked_until within
// [from+d, to+d] when locked (null otherwise) and networks locked networks.
func wantLock(t *testing.T, what string, u lockJSON, locked bool, networks int, from, to time.Time, d time.Duration) {
	t.Helper()
	if u.Locked == nil || u.LockedNetworks == nil {
		t.Fatalf("%s: locked or locked_networks missing: %+v", what, u)
	}
	if *u.Locked != locked || *u.LockedNetworks != networks {
		t.Fatalf("%s: locked %v locked_networks %d, want %v and %d", what, *u.Locked, *u.LockedNetworks, locked, networks)
	}
	switch {
	case !locked && u.LockedUntil != nil:
		t.Fatalf("%s: locked_until %v, want null", what, u.LockedUntil)
	case locked && (u.LockedUntil == nil || u.LockedUntil.Before(from.Add(d).Truncate(time.Second)) || u.LockedUntil.After(to.Add(d))):
		t.Fatalf("%s: locked_until %v, want within [%v, %v]", what, u.LockedUntil, from.Add(d), to.Add(d))
	}
}

// TestCLIUsersUnlock: on both backends, MaxFailures wrong passwords from one
// network show the user as locked (locked_until the network's lock of
// lockout.duration, one locked network) in `users get`, `users list`,
// GET /admin/users and /admin/users/{id}; `users unlock` and POST
// /admin/users/{id}/unlock clear it, and the right password from that
// network works again at once.
func TestCLIUsersUnlock(t *testing.T) {
	const attacker = "198.51.100.7"
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0", "PORTCULLIS_HTTP_TRUSTED_PROXIES=127.0.0.1",
		"PORTCULLIS_LOCKOUT_MAX_FAILURES=3", "PORTCULLIS_LOCKOUT_DURATION=10m"}, func(t *testing.T, srv *proctest.Server) {
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		srv.CreateUser(t, "alice", alicePassword)
		srv.CreateUser(t, "bob", bobPassword)
		cliUser := func(args ...string) lockJSON {
			t.Helper()
			var u lockJSON
			out := srv.CLI(t, "", append(args, "--output", "json")...)
			if err := json.Unmarshal(out, &u); err != nil {
				t.Fatalf("%v: %s: %v", args, out, err)
			}
			return u
		}
		apiUser := func(method, path string) lockJSON {
			t.Helper()
			r := adminCall(t, srv, admin, method, path, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
			}
			var u lockJSON
			if err := json.Unmarshal(r.Body, &u); err != nil {
				t.Fatal(err)
			}
			return u
		}
		lock := func() (from, to time.Time) {
			t.Helper()
			from = time.Now()
			for range 3 {
				wantOAuthError(t, passwordGrant(t, srv, app.ClientID, "alice", "wrong guess 123456", attacker), http.StatusBadRequest, "invalid_grant")
			}
			to = time.Now()
			if r := passwordGrant(t, srv, app.ClientID, "alice", alicePassword, attacker); r.Status != http.StatusTooManyRequests {
				t.Fatalf("right password from the locked network: %d %s", r.Status, r.Body)
			}
			return from, to
		}

		alice := cliUser("users", "get", "alice")
		wantLock(t, "fresh user", alice, false, 0, time.Time{}, time.Time{}, 0)
		from, to := lock()
		wantLock(t, "users get after 3 guesses", cliUser("users", "get", "alice"), true, 1, from, to, 10*time.Minute)
		wantLock(t, "GET /admin/users/{id}", apiUser(http.MethodGet, "/admin/users/"+alice.ID), true, 1, from, to, 10*time.Minute)
		for what, body := range map[string][]byte{
			"users list":       srv.CLI(t, "", "users", "list", "--output", "json"),
			"GET /admin/users": adminCall(t, srv, admin, http.MethodGet, "/admin/users", nil).Body,
		} {
			var list []lockJSON
			if err := json.Unmarshal(body, &list); err != nil || len(list) != 2 {
				t.Fatalf("%s: %s: %v", what, body, err)
			}
			wantLock(t, what+": alice", list[0], true, 1, from, to, 10*time.Minute)
			wantLock(t, what+": bob", list[1], false, 0, time.Time{}, time.Time{}, 0)
		}
		if text := string(srv.CLI(t, "", "users", "list")); !strings.Contains(text, "LOCKED") {
			t.Errorf("users list shows no LOCKED column:\n%s", text)
		}

		wantLock(t, "users unlock", cliUser("users", "unlock", "alice"), false, 0, time.Time{}, time.Time{}, 0)
		if r := passwordGrant(t, srv, app.ClientID, "alice", alicePassword, attacker); r.Status != http.StatusOK {
			t.Fatalf("right password after users unlock: %d %s", r.Status, r.Body)
		}

		lock()
		wantLock(t, "POST /admin/users/{id}/unlock", apiUser(http.MethodPost, "/admin/users/"+alice.ID+"/unlock"), false, 0, time.Time{}, time.Time{}, 0)
		wantLock(t, "GET after unlock", apiUser(http.MethodGet, "/admin/users/"+alice.ID), false, 0, time.Time{}, time.Time{}, 0)
		if r := passwordGrant(t, srv, app.ClientID, "alice", alicePassword, attacker); r.Status != http.StatusOK {
			t.Fatalf("right password after POST unlock: %d %s", r.Status, r.Body)
		}
		wantAdminError(t, "unlock an unknown user", adminCall(t, srv, admin, http.MethodPost, "/admin/users/00000000-0000-4000-8000-000000000000/unlock", nil),
			http.StatusNotFound, "not_found")
		if _, stderr, err := srv.TryCLI("", "users", "unlock", "nobody"); err == nil || !strings.Contains(string(stderr), "not found") {
			t.Errorf("users unlock nobody: %v %s", err, stderr)
		}
	})
}
