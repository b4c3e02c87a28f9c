package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// auditEvent is an event of GET /admin/audit and `audit list`.
type auditEvent struct {
	ID        int64  `json:"id"`
	Time      string `json:"time"`
	Actor     string `json:"actor"`
	Action    string `json:"action"`
	Target    string `json:"target"`
	Outcome   string `json:"outcome"`
	ClientIP  string `json:"client_ip"`
	RequestID string `json:"request_id"`
}

type auditPage struct {
	Events     []auditEvent `json:"events"`
	NextCursor string       `json:"next_cursor"`
}

// auditList fetches one page of GET /admin/audit with query q.
func auditList(t *testing.T, srv *proctest.Server, token string, q url.Values) (auditPage, []byte) {
	t.Helper()
	r := adminCall(t, srv, token, http.MethodGet, "/admin/audit?"+q.Encode(), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /admin/audit?%s: %d %s", q.Encode(), r.Status, r.Body)
	}
	var p auditPage
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("GET /admin/audit: %v: %s", err, r.Body)
	}
	return p, r.Body
}

// findEvent returns the events with actor, action and target ("" matches any).
func findEvents(evs []auditEvent, actor, action, target string) []auditEvent {
	var out []auditEvent
	for _, e := range evs {
		if (actor == "" || e.Actor == actor) && e.Action == action && (target == "" || e.Target == target) {
			out = append(out, e)
		}
	}
	return out
}

// TestAuditTrail drives the real binary on both backends: admin changes
// through the admin API and the CLI are recorded with their actor, request
// ID and client IP, refused changes (one refused by validation, one by a
// stale If-Match inside its transaction, one by the client update's own
// check) leave only a failure event, logins record successes and failures, GET
// /admin/audit pages through more than one page with a stable cursor, the
// CLI lists the same events, nothing in the trail is a password, secret or
// token, and the events are counted in Prometheus.
func TestAuditTrail(t *testing.T) {
	const pw1, pw2 = "purple otter lamp 42", "green walrus desk 77"
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		srv.CreateUser(t, "alice", pw1)
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		actor := "client:" + adm.ClientID

		// Admin changes through the API, one with a request ID of ours.
		r := proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users", "application/json",
			strings.NewReader(`{"username":"bob","password":"`+pw1+`"}`), "Authorization", "Bearer "+admin, "X-Request-Id", "audit-req-1")
		if r.Status != http.StatusCreated {
			t.Fatalf("create bob: %d %s", r.Status, r.Body)
		}
		var bob struct{ ID string }
		_ = json.Unmarshal(r.Body, &bob)
		bobT := "user:" + bob.ID
		if r := adminCall(t, srv, admin, http.MethodPatch, "/admin/users/"+bob.ID, map[string]any{"roles": []string{"admin"}, "password": pw2}); r.Status != http.StatusOK {
			t.Fatalf("patch bob: %d %s", r.Status, r.Body)
		}
		if r := adminCall(t, srv, admin, http.MethodPost, "/admin/users/"+bob.ID+"/unlock", nil); r.Status != http.StatusOK {
			t.Fatalf("unlock bob: %d %s", r.Status, r.Body)
		}
		r = adminCall(t, srv, admin, http.MethodPost, "/admin/clients", map[string]any{"client_name": "svc", "grant_types": []string{"client_credentials"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("create client: %d %s", r.Status, r.Body)
		}
		var svc struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
		_ = json.Unmarshal(r.Body, &svc)
		r = adminCall(t, srv, admin, http.MethodPost, "/admin/clients/"+svc.ClientID+"/secret", nil)
		var rotated struct {
			ClientSecret string `json:"client_secret"`
		}
		if err := json.Unmarshal(r.Body, &rotated); err != nil || r.Status != http.StatusOK || rotated.ClientSecret == "" {
			t.Fatalf("rotate secret: %d %s", r.Status, r.Body)
		}
		if r := adminCall(t, srv, admin, http.MethodPost, "/admin/keys/rotate", nil); r.Status != http.StatusCreated {
			t.Fatalf("rotate key: %d %s", r.Status, r.Body)
		}

		// Refused changes: no success event.
		before, _ := auditList(t, srv, admin, url.Values{"target": {bobT}})
		wantAdminError(t, "weak password", adminCall(t, srv, admin, http.MethodPatch, "/admin/users/"+bob.ID, map[string]any{"password": "short"}),
			http.StatusBadRequest, "invalid_request")
		r = proctest.Do(t, http.MethodPatch, srv.AdminURL+"/admin/users/"+bob.ID, "application/json", strings.NewReader(`{"disabled":true}`),
			"Authorization", "Bearer "+admin, "If-Match", `"stale"`)
		if r.Status != http.StatusPreconditionFailed {
			t.Fatalf("stale If-Match: %d %s", r.Status, r.Body)
		}
		// Each leaves one failure event of the route (user.update), and
		// none of what it would have changed.
		after, _ := auditList(t, srv, admin, url.Values{"target": {bobT}})
		added := after.Events[len(before.Events):]
		if len(added) != 2 || len(findEvents(added, actor, "user.update", bobT)) != 2 || added[0].Outcome != "failure" || added[1].Outcome != "failure" {
			t.Fatalf("refused changes of bob: events %+v, want two user.update failures", added)
		}
		// A client update refused inside its transaction (public ⇄ confidential).
		wantAdminError(t, "public switch", adminCall(t, srv, admin, http.MethodPut, "/admin/clients/"+svc.ClientID,
			map[string]any{"client_name": "svc", "token_endpoint_auth_method": "none", "grant_types": []string{"password"}}),
			http.StatusBadRequest, "invalid_request")
		if p, _ := auditList(t, srv, admin, url.Values{"action": {"client.update"}}); len(p.Events) != 1 || p.Events[0].Outcome != "failure" {
			t.Fatalf("refused client update: events %+v, want one failure", p.Events)
		}

		// Logins: unknown user, wrong password, success.
		wantOAuthError(t, passwordGrant(t, srv, app.ClientID, "nobody", pw1, ""), http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, passwordGrant(t, srv, app.ClientID, "bob", pw1, ""), http.StatusBadRequest, "invalid_grant")
		tok := proctest.MustToken(t, passwordGrant(t, srv, app.ClientID, "bob", pw2, ""))

		// Page through everything, three at a time.
		var all []auditEvent
		var bodies bytes.Buffer
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 50 {
				t.Fatal("pagination does not end")
			}
			q := url.Values{"limit": {"3"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			p, body := auditList(t, srv, admin, q)
			bodies.Write(body)
			all = append(all, p.Events...)
			if p.NextCursor == "" {
				break
			}
			if len(p.Events) != 3 {
				t.Fatalf("page %d before the last has %d events", pages, len(p.Events))
			}
			cursor = p.NextCursor
		}
		whole, body := auditList(t, srv, admin, url.Values{"limit": {"1000"}})
		bodies.Write(body)
		if len(all) < 10 || len(all) != len(whole.Events) {
			t.Fatalf("paged %d events, one page of 1000 has %d", len(all), len(whole.Events))
		}
		for i := range all {
			if all[i] != whole.Events[i] || (i > 0 && all[i].ID <= all[i-1].ID) {
				t.Fatalf("event %d paged %+v, listed %+v", i, all[i], whole.Events[i])
			}
		}

		for _, want := range []struct{ actor, action, target string }{
			{"cli", "client.create", "client:" + adm.ClientID},
			{"cli", "client.create", "client:" + app.ClientID},
			{"cli", "user.create", ""},
			{actor, "user.create", bobT},
			{actor, "user.set_roles", bobT},
			{actor, "user.set_password", bobT},
			{actor, "user.unlock", bobT},
			{actor, "client.create", "client:" + svc.ClientID},
			{actor, "client.rotate_secret", "client:" + svc.ClientID},
			{actor, "key.rotate", ""},
			{"anonymous", "login", bobT},
			{"user:" + bob.ID, "login", bobT},
		} {
			if len(findEvents(all, want.actor, want.action, want.target)) == 0 {
				t.Errorf("no event %+v in %+v", want, all)
			}
		}
		created := findEvents(all, actor, "user.create", bobT)
		if len(created) != 1 || created[0].RequestID != "audit-req-1" || created[0].ClientIP != "127.0.0.1" || created[0].Outcome != "success" {
			t.Errorf("bob's creation event %+v: want one, request ID audit-req-1, client IP 127.0.0.1", created)
		}
		failed := findEvents(all, "anonymous", "login", "")
		if len(failed) != 2 || failed[0].Outcome != "failure" || failed[0].Target != "" || failed[1].Outcome != "failure" {
			t.Errorf("failed logins %+v: want two failures, the unknown user without target", failed)
		}
		if ok := findEvents(all, "user:"+bob.ID, "login", bobT); len(ok) != 1 || ok[0].Outcome != "success" {
			t.Errorf("successful login %+v", ok)
		}

		// Filters on the API.
		if p, _ := auditList(t, srv, admin, url.Values{"actor": {"cli"}}); len(p.Events) < 3 || slices.ContainsFunc(p.Events, func(e auditEvent) bool { return e.Actor != "cli" }) {
			t.Errorf("actor=cli: %+v", p.Events)
		}
		if p, _ := auditList(t, srv, admin, url.Values{"since": {"2999-01-01T00:00:00Z"}}); len(p.Events) != 0 {
			t.Errorf("since the future: %+v", p.Events)
		}
		// A query that does not parse, or names a filter twice, would
		// otherwise list the events unfiltered.
		for _, q := range []string{"since=yesterday", "limit=0", "limit=1001", "cursor=bogus", "action=login%", "actor=cli&actor=system", "target=%zz"} {
			wantAdminError(t, q, adminCall(t, srv, admin, http.MethodGet, "/admin/audit?"+q, nil), http.StatusBadRequest, "invalid_request")
		}

		// The CLI lists the same events.
		var cli auditPage
		out := srv.CLI(t, "", "audit", "list", "--output", "json", "--limit", "1000")
		bodies.Write(out)
		if err := json.Unmarshal(out, &cli); err != nil || len(cli.Events) != len(all) {
			t.Fatalf("audit list: %v: %d events, want %d: %s", err, len(cli.Events), len(all), out)
		}
		out = srv.CLI(t, "", "audit", "list", "--action", "login", "--limit", "1")
		if !strings.Contains(string(out), "ACTION") || !strings.Contains(string(out), "login") || !strings.Contains(string(out), "more: --cursor ") {
			t.Errorf("audit list text output:\n%s", out)
		}

		// No secret, password, token or hash anywhere in the trail.
		for name, secret := range map[string]string{"password 1": pw1, "password 2": pw2, "client secret": svc.ClientSecret,
			"rotated secret": rotated.ClientSecret, "admin token": admin, "user token": tok.AccessToken, "argon2 hash": "$argon2", "admin secret": adm.ClientSecret} {
			if secret != "" && strings.Contains(bodies.String(), secret) {
				t.Errorf("the audit trail contains the %s", name)
			}
		}

		// Prometheus.
		m := proctest.Do(t, http.MethodGet, srv.AdminURL+"/metrics", "", nil)
		for _, want := range []string{`portcullis_audit_events_total{action="login",outcome="failure"} 2`,
			`portcullis_audit_events_total{action="user.create",outcome="success"} 1`} {
			if !strings.Contains(string(m.Body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}
