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
