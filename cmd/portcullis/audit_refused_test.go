package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestAuditRefusedAdminChanges drives the real binary on both backends:
// an admin API change that is refused leaves one event with outcome
// failure, written outside the change's rolled-back transaction. A token
// that verifies but is refused with 403 (a user without role admin, a
// client no longer registered for scope admin) records admin.denied by
// the token's user or client, on the route's user or client when it
// exists; an authorized change refused with 400, 404, 409 or 412 records
// the route's action. Reads, and requests without a valid token (401),
// are never recorded, and no event holds a value the caller typed (a
// username, a password, an ID that names nothing). Before, refusals left
// no trace.
func TestAuditRefusedAdminChanges(t *testing.T) {
	const typedName, weakPassword = "mallorys-typed-name", "tiny1"
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		_, claims := proctest.DecodeJWT(t, admin)
		adminAud := fmt.Sprint(claims["aud"].([]any)[0])
		actor := "client:" + adm.ClientID

		// A password client whose users may ask for scope admin; mallory
		// does not hold role admin.
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password", "--scope", "admin", "--audience", adminAud)
		srv.CreateUser(t, "mallory", alicePassword)
		srv.CreateUser(t, "bob", alicePassword)
		var mallory, bob lockJSON
		for name, u := range map[string]*lockJSON{"mallory": &mallory, "bob": &bob} {
			if err := json.Unmarshal(srv.CLI(t, "", "users", "get", name, "--output", "json"), u); err != nil {
				t.Fatal(err)
			}
		}
		form := url.Values{"grant_type": {"password"}, "username": {"mallory"}, "password": {alicePassword}, "client_id": {app.ClientID}, "scope": {"admin"}}
		malloryTok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", form.Encode())).AccessToken
		// A client registered for scope admin whose scope is then withdrawn.
		svc := srv.CreateClient(t, "--name", "svc", "--grant-type", "client_credentials", "--scope", "admin")
		svcTok := srv.ClientCredentialsToken(t, svc, "admin").AccessToken
		if r := adminCall(t, srv, admin, http.MethodPut, "/admin/clients/"+svc.ClientID,
			map[string]any{"client_name": "svc", "grant_types": []string{"client_credentials"}, "scope": "read"}); r.Status != http.StatusOK {
			t.Fatalf("withdraw svc's scope: %d %s", r.Status, r.Body)
		}
		_, body := auditAll(t, srv, admin)
		var seen []auditEvent
		_ = json.Unmarshal(body, &struct{ Events *[]auditEvent }{&seen})
		mark := seen[len(seen)-1].ID

		type call struct {
			token, method, path, ifMatch string
			body                         any
			status                       int
		}
		for _, c := range []call{
			// 403 for tokens that verify: recorded when they change.
			{malloryTok, http.MethodDelete, "/admin/users/" + bob.ID, "", nil, http.StatusForbidden},
			{malloryTok, http.MethodPost, "/admin/users", "", map[string]any{"username": typedName, "password": alicePassword}, http.StatusForbidden},
			{malloryTok, http.MethodDelete, "/admin/users/" + typedName, "", nil, http.StatusForbidden},
			{svcTok, http.MethodPost, "/admin/keys/rotate", "", nil, http.StatusForbidden},
			// Reads and missing or invalid tokens: never recorded.
			{malloryTok, http.MethodGet, "/admin/users/" + bob.ID, "", nil, http.StatusForbidden},
			{svcTok, http.MethodGet, "/admin/keys", "", nil, http.StatusForbidden},
			{"", http.MethodDelete, "/admin/users/" + bob.ID, "", nil, http.StatusUnauthorized},
			{"not-a-token", http.MethodPost, "/admin/keys/rotate", "", nil, http.StatusUnauthorized},
			{admin, http.MethodGet, "/admin/users/" + bob.ID, `"stale"`, nil, http.StatusPreconditionFailed},
			// Authorized changes refused.
			{admin, http.MethodPatch, "/admin/users/" + bob.ID, `"stale"`, map[string]any{"disabled": true}, http.StatusPreconditionFailed},
			{admin, http.MethodPatch, "/admin/users/" + bob.ID, "", map[string]any{"password": weakPassword}, http.StatusBadRequest},
			{admin, http.MethodDelete, "/admin/users/" + typedName, "", nil, http.StatusNotFound},
			{admin, http.MethodPost, "/admin/users", "", map[string]any{"username": "bob", "password": alicePassword}, http.StatusConflict},
			{admin, http.MethodDelete, "/admin/clients/" + svc.ClientID, `"stale"`, nil, http.StatusPreconditionFailed},
			{admin, http.MethodPost, "/admin/keys/rotate?prepublish=maybe", "", nil, http.StatusBadRequest},
		} {
			h := []string{}
			if c.token != "" {
				h = append(h, "Authorization", "Bearer "+c.token)
			}
			if c.ifMatch != "" {
				h = append(h, "If-Match", c.ifMatch)
			}
			j, _ := json.Marshal(c.body)
			var r proctest.Response
			if c.body == nil {
				r = proctest.Do(t, c.method, srv.AdminURL+c.path, "", nil, h...)
			} else {
				r = proctest.Do(t, c.method, srv.AdminURL+c.path, "application/json", strings.NewReader(string(j)), h...)
			}
			if r.Status != c.status {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, r.Status, r.Body, c.status)
			}
		}

		evs, body := auditAll(t, srv, admin)
		var got []string
		for _, e := range evs {
			if e.ID > mark {
				if e.Outcome != "failure" || e.ClientIP != "127.0.0.1" || e.RequestID == "" {
					t.Errorf("event %+v: want a failure with client IP and request ID", e)
				}
				got = append(got, e.Actor+" "+e.Action+" "+e.Target)
			}
		}
		userT, bobT, svcT := "user:"+mallory.ID, "user:"+bob.ID, "client:"+svc.ClientID
		want := []string{
			userT + " admin.denied " + bobT,
			userT + " admin.denied ",
			userT + " admin.denied ",
			svcT + " admin.denied ",
			actor + " user.update " + bobT,
			actor + " user.update " + bobT,
			actor + " user.delete ",
			actor + " user.create ",
			actor + " client.delete " + svcT,
			actor + " key.rotate ",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("events of the refusals:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		wantNoSecrets(t, body, map[string]string{"typed name": typedName, "weak password": weakPassword,
			"password": alicePassword, "mallory's token": malloryTok, "svc's token": svcTok})
		if r := adminCall(t, srv, admin, http.MethodGet, "/admin/clients/"+svc.ClientID, nil); r.Status != http.StatusOK {
			t.Fatalf("svc after a refused delete: %d", r.Status)
		}
	})
}
