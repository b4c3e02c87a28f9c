package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// adminIf sends body as JSON to the admin API of srv with If-Match
// ifMatch ("" for none).
func adminIf(t *testing.T, srv *proctest.Server, token, method, path, ifMatch string, body any) proctest.Response {
	t.Helper()
	j, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	var h []string
	if ifMatch != "" {
		h = []string{"If-Match", ifMatch}
	}
	if body == nil {
		return adminRaw(t, srv, token, method, path, "", h...)
	}
	return adminRaw(t, srv, token, method, path, string(j), h...)
}

// TestAdminOptimisticConcurrency: on both backends, GET/PUT
// /admin/clients/{id} and GET/PATCH /admin/users/{id} carry a strong ETag
// that changes with every change; an update with If-Match naming an
// older ETag (or a weak one) is refused with 412 and changes nothing, one
// without If-Match or with "*" is made; and of 8 concurrent updates sent
// with the same If-Match exactly one is made and the others get 412, so
// none is lost silently.
func TestAdminOptimisticConcurrency(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		srv.CreateUser(t, "alice", alicePassword)
		var alice lockJSON
		if err := json.Unmarshal(srv.CLI(t, "", "users", "get", "alice", "--output", "json"), &alice); err != nil {
			t.Fatal(err)
		}

		type resource struct {
			name, path, method string
			body               func(i int) any
			value              func(r proctest.Response) string
		}
		for _, res := range []resource{
			{"client", "/admin/clients/" + app.ClientID, http.MethodPut,
				func(i int) any {
					return map[string]any{"client_name": fmt.Sprintf("app-%d", i), "token_endpoint_auth_method": "none", "grant_types": []string{"password"}}
				},
				func(r proctest.Response) string { return fmt.Sprint(r.JSON(t)["client_name"]) }},
			{"user", "/admin/users/" + alice.ID, http.MethodPatch,
				// With a new password, whose hashing between the read and
				// the write leaves concurrent updates time to interleave.
				func(i int) any {
					return map[string]any{"roles": []string{fmt.Sprintf("role-%d", i)}, "password": fmt.Sprintf("purple otter lamp %d", 1000+i)}
				},
				func(r proctest.Response) string { return fmt.Sprint(r.JSON(t)["roles"]) }},
		} {
			get := func(ifMatch string) proctest.Response {
				return adminIf(t, srv, admin, http.MethodGet, res.path, ifMatch, nil)
			}
			r := get("")
			e0 := r.Header.Get("ETag")
			if r.Status != http.StatusOK || len(e0) < 3 || e0[0] != '"' || e0[len(e0)-1] != '"' {
				t.Fatalf("%s: GET %d, ETag %q: want a strong entity tag", res.name, r.Status, e0)
			}
			if res.name == "user" {
				// A failed login changes the counters, not the user.
				wantOAuthError(t, passwordGrant(t, srv, app.ClientID, "alice", "wrong guess 123456", ""), http.StatusBadRequest, "invalid_grant")
				if e := get("").Header.Get("ETag"); e != e0 {
					t.Fatalf("user: ETag %s after a failed login, was %s", e, e0)
				}
			}
			if r := get(e0); r.Status != http.StatusOK {
				t.Fatalf("%s: GET with a matching If-Match: %d", res.name, r.Status)
			}

			r = adminIf(t, srv, admin, res.method, res.path, "", res.body(100))
			e1 := r.Header.Get("ETag")
			if r.Status != http.StatusOK || e1 == "" || e1 == e0 || get("").Header.Get("ETag") != e1 {
				t.Fatalf("%s: update without If-Match: %d, ETag %q (before %q, GET now %q)", res.name, r.Status, e1, e0, get("").Header.Get("ETag"))
			}
			before := res.value(get(""))
			for _, stale := range []string{e0, "W/" + e1, `"nope", ` + e0, "garbage"} {
				wantAdminError(t, res.name+" update with If-Match "+stale, adminIf(t, srv, admin, res.method, res.path, stale, res.body(101)),
					http.StatusPreconditionFailed, "precondition_failed")
			}
			wantAdminError(t, res.name+" GET with a stale If-Match", get(e0), http.StatusPreconditionFailed, "precondition_failed")
			if after := get(""); res.value(after) != before || after.Header.Get("ETag") != e1 {
				t.Fatalf("%s: refused updates changed it: %s (ETag %s), was %s (%s)", res.name, res.value(after), after.Header.Get("ETag"), before, e1)
			}
			r = adminIf(t, srv, admin, res.method, res.path, `"nope", `+e1, res.body(102))
			e2 := r.Header.Get("ETag")
			if r.Status != http.StatusOK || e2 == e1 {
				t.Fatalf("%s: update with a list holding the current ETag: %d %s", res.name, r.Status, r.Body)
			}
			if r := adminIf(t, srv, admin, res.method, res.path, "*", res.body(103)); r.Status != http.StatusOK {
				t.Fatalf("%s: update with If-Match *: %d %s", res.name, r.Status, r.Body)
			}

			// 8 writers that all read the same version.
			base := get("").Header.Get("ETag")
			var wg sync.WaitGroup
			results := make([]proctest.Response, 8)
			for i := range results {
				wg.Go(func() { results[i] = adminIf(t, srv, admin, res.method, res.path, base, res.body(i)) })
			}
			wg.Wait()
			var won []int
			for i, r := range results {
				switch r.Status {
				case http.StatusOK:
					won = append(won, i)
				case http.StatusPreconditionFailed:
				default:
					t.Fatalf("%s: concurrent update %d: %d %s", res.name, i, r.Status, r.Body)
				}
			}
			if len(won) != 1 {
				t.Fatalf("%s: %d of 8 concurrent updates with the same If-Match were made (%v), want exactly 1", res.name, len(won), won)
			}
			final := get("")
			if res.value(final) != res.value(results[won[0]]) || final.Header.Get("ETag") != results[won[0]].Header.Get("ETag") {
				t.Fatalf("%s: stored %s (ETag %s), the winner answered %s (%s)", res.name, res.value(final), final.Header.Get("ETag"),
					res.value(results[won[0]]), results[won[0]].Header.Get("ETag"))
			}
			t.Logf("%s: 8 concurrent updates from one read: #%d made, 7 got 412", res.name, won[0])
		}
	})
}

// TestAdminIfMatchOnEveryChange: on both backends, DELETE
// /admin/clients/{id}, POST /admin/clients/{id}/secret, DELETE
// /admin/users/{id}, POST /admin/users/{id}/unlock and POST
// /admin/users/{id}/mfa/reset evaluate If-Match (RFC 9110 §13.1.1) as PUT
// and PATCH do: a stale or weak entity tag is refused with 412
// precondition_failed and changes nothing; the current one, a list
// holding it, or "*" lets the change through; a missing resource is 404
// whatever If-Match says. Of 8 concurrent secret rotations sent with the
// same If-Match exactly one is made: the check is made in the change's
// transaction. Before, these routes ignored If-Match.
func TestAdminIfMatchOnEveryChange(t *testing.T) {
	env := []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0", "PORTCULLIS_LOCKOUT_MAX_FAILURES=1"}
	portcullis.EachBackend(t, env, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		call := func(method, path, ifMatch string, body any) proctest.Response {
			t.Helper()
			return adminIf(t, srv, admin, method, path, ifMatch, body)
		}
		etag := func(path string) string {
			t.Helper()
			r := call(http.MethodGet, path, "", nil)
			if r.Status != http.StatusOK || r.Header.Get("ETag") == "" {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
			return r.Header.Get("ETag")
		}
		// stale returns the path's ETag before a change made through it,
		// and the one after.
		newClient := func(name string) (path, stale, current string) {
			t.Helper()
			c := srv.CreateClient(t, "--name", name, "--grant-type", "client_credentials")
			path = "/admin/clients/" + c.ClientID
			stale = etag(path)
			if r := call(http.MethodPut, path, "", map[string]any{"client_name": name + "-2", "grant_types": []string{"client_credentials"}}); r.Status != http.StatusOK {
				t.Fatalf("PUT %s: %d %s", path, r.Status, r.Body)
			}
			return path, stale, etag(path)
		}
		newUser := func(name string) (path, stale, current string) {
			t.Helper()
			srv.CreateUser(t, name, alicePassword)
			var u lockJSON
			if err := json.Unmarshal(srv.CLI(t, "", "users", "get", name, "--output", "json"), &u); err != nil {
				t.Fatal(err)
			}
			path = "/admin/users/" + u.ID
			stale = etag(path)
			if r := call(http.MethodPatch, path, "", map[string]any{"roles": []string{"staff"}}); r.Status != http.StatusOK {
				t.Fatalf("PATCH %s: %d %s", path, r.Status, r.Body)
			}
			return path, stale, etag(path)
		}
		refused := func(what string, r proctest.Response) {
			t.Helper()
			wantAdminError(t, what, r, http.StatusPreconditionFailed, "precondition_failed")
		}
		exists := func(path string) bool { return call(http.MethodGet, path, "", nil).Status == http.StatusOK }

		// DELETE /admin/clients/{id}.
		path, stale, cur := newClient("del")
		for _, tag := range []string{stale, "W/" + cur, "garbage"} {
			refused("DELETE client, If-Match "+tag, call(http.MethodDelete, path, tag, nil))
		}
		if !exists(path) || etag(path) != cur {
			t.Fatal("a refused DELETE changed the client")
		}
		if r := call(http.MethodDelete, path, `"nope", `+cur, nil); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE client with the current ETag: %d %s", r.Status, r.Body)
		}
		wantAdminError(t, "DELETE missing client", call(http.MethodDelete, path, cur, nil), http.StatusNotFound, "not_found")
		path, _, _ = newClient("del-star")
		if r := call(http.MethodDelete, path, "*", nil); r.Status != http.StatusNoContent || exists(path) {
			t.Fatalf("DELETE client with If-Match *: %d %s", r.Status, r.Body)
		}

		// POST /admin/clients/{id}/secret, then 8 at once from one read.
		path, stale, cur = newClient("secret")
		refused("rotate secret, stale If-Match", call(http.MethodPost, path+"/secret", stale, nil))
		if etag(path) != cur {
			t.Fatal("a refused secret rotation changed the client")
		}
		r := call(http.MethodPost, path+"/secret", cur, nil)
		if r.Status != http.StatusOK || r.Header.Get("ETag") == cur || r.Header.Get("ETag") != etag(path) {
			t.Fatalf("rotate secret with the current ETag: %d %s", r.Status, r.Body)
		}
		if r := call(http.MethodPost, path+"/secret", "*", nil); r.Status != http.StatusOK {
			t.Fatalf("rotate secret with If-Match *: %d %s", r.Status, r.Body)
		}
		base := etag(path)
		var wg sync.WaitGroup
		results := make([]proctest.Response, 8)
		for i := range results {
			wg.Go(func() { results[i] = adminIf(t, srv, admin, http.MethodPost, path+"/secret", base, nil) })
		}
		wg.Wait()
		made := 0
		for i, r := range results {
			switch r.Status {
			case http.StatusOK:
				made++
			case http.StatusPreconditionFailed:
			default:
				t.Fatalf("concurrent rotation %d: %d %s", i, r.Status, r.Body)
			}
		}
		if made != 1 {
			t.Fatalf("%d of 8 concurrent secret rotations with the same If-Match were made, want 1", made)
		}
		wantAdminError(t, "rotate secret of a missing client", call(http.MethodPost, "/admin/clients/nope/secret", base, nil), http.StatusNotFound, "not_found")

		// DELETE /admin/users/{id}.
		path, stale, cur = newUser("dora")
		refused("DELETE user, stale If-Match", call(http.MethodDelete, path, stale, nil))
		refused("DELETE user, weak If-Match", call(http.MethodDelete, path, "W/"+cur, nil))
		if !exists(path) || etag(path) != cur {
			t.Fatal("a refused DELETE changed the user")
		}
		if r := call(http.MethodDelete, path, cur, nil); r.Status != http.StatusNoContent || exists(path) {
			t.Fatalf("DELETE user with the current ETag: %d %s", r.Status, r.Body)
		}
		wantAdminError(t, "DELETE missing user", call(http.MethodDelete, path, cur, nil), http.StatusNotFound, "not_found")
		path, _, _ = newUser("dora2")
		if r := call(http.MethodDelete, path, "*", nil); r.Status != http.StatusNoContent || exists(path) {
			t.Fatalf("DELETE user with If-Match *: %d %s", r.Status, r.Body)
		}

		// POST /admin/users/{id}/unlock: a locked account stays locked.
		path, stale, cur = newUser("erin")
		locked := func() bool {
			t.Helper()
			var u lockJSON
			if err := json.Unmarshal(call(http.MethodGet, path, "", nil).Body, &u); err != nil || u.Locked == nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			return *u.Locked
		}
		for range 2 {
			passwordGrant(t, srv, app.ClientID, "erin", "wrong guess 123456", "")
		}
		if !locked() {
			t.Fatal("erin is not locked after two failures")
		}
		refused("unlock, stale If-Match", call(http.MethodPost, path+"/unlock", stale, nil))
		if !locked() {
			t.Fatal("a refused unlock unlocked erin")
		}
		if r := call(http.MethodPost, path+"/unlock", cur, nil); r.Status != http.StatusOK || locked() {
			t.Fatalf("unlock with the current ETag: %d %s", r.Status, r.Body)
		}
		if r := call(http.MethodPost, path+"/unlock", "*", nil); r.Status != http.StatusOK {
			t.Fatalf("unlock with If-Match *: %d %s", r.Status, r.Body)
		}
		wantAdminError(t, "unlock a missing user", call(http.MethodPost, "/admin/users/nope/unlock", cur, nil), http.StatusNotFound, "not_found")

		// POST /admin/users/{id}/mfa/reset: the factor stays.
		path, _, _ = newUser("fred")
		fred := "Bearer " + userToken(t, srv, app.ClientID, "fred", alicePassword)
		enrolled(t, srv, fred, alicePassword)
		stale = etag(path)
		if r := call(http.MethodPatch, path, "", map[string]any{"roles": []string{"ops"}}); r.Status != http.StatusOK {
			t.Fatalf("PATCH fred: %d %s", r.Status, r.Body)
		}
		cur = etag(path)
		mfa := func() bool {
			t.Helper()
			return call(http.MethodGet, path, "", nil).JSON(t)["mfa_enabled"] == true
		}
		refused("MFA reset, stale If-Match", call(http.MethodPost, path+"/mfa/reset", stale, nil))
		if !mfa() {
			t.Fatal("a refused MFA reset removed fred's factor")
		}
		if r := call(http.MethodPost, path+"/mfa/reset", cur, nil); r.Status != http.StatusNoContent || mfa() {
			t.Fatalf("MFA reset with the current ETag: %d %s", r.Status, r.Body)
		}
		if r := call(http.MethodPost, path+"/mfa/reset", "*", nil); r.Status != http.StatusNoContent {
			t.Fatalf("MFA reset with If-Match *: %d %s", r.Status, r.Body)
		}
		wantAdminError(t, "MFA reset of a missing user", call(http.MethodPost, "/admin/users/nope/mfa/reset", cur, nil), http.StatusNotFound, "not_found")
	})
}
