package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// adminRaw sends body as it is to the admin API of srv.
func adminRaw(t *testing.T, srv *proctest.Server, token, method, path, body string, header ...string) proctest.Response {
	t.Helper()
	return proctest.Do(t, method, srv.AdminURL+path, "application/json", bytes.NewReader([]byte(body)), append([]string{"Authorization", "Bearer " + token}, header...)...)
}

// TestAdminClientsRFC7591: on both backends, the admin client API as RFC
// 7591 asks: an answer carrying a client secret (creation, rotation) has
// Cache-Control: no-store and client_id_issued_at / client_secret_expires_at
// (0: never), other answers have neither; metadata the server does not
// understand (redirect_uris, logo_uri, a member differing only in case) is
// ignored, not refused, and absent from the answer; invalid values of
// supported members and a caller-chosen client_secret are still refused.
func TestAdminClientsRFC7591(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken

		r := adminRaw(t, srv, admin, http.MethodPost, "/admin/clients", `{"client_name":"svc","grant_types":["client_credentials"],`+
			`"redirect_uris":[],"logo_uri":"https://x.example/logo.png","contacts":["a@x.example"],"Client_Name":"evil","software_version":"1"}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("POST with unknown metadata: %d %s", r.Status, r.Body)
		}
		var created map[string]any
		if err := json.Unmarshal(r.Body, &created); err != nil {
			t.Fatal(err)
		}
		wantSecretMembers := func(what string, r proctest.Response, m map[string]any) {
			t.Helper()
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
			}
			createdAt, err := time.Parse(time.RFC3339Nano, m["created_at"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if m["client_secret"] == nil || m["client_id_issued_at"] != float64(createdAt.Unix()) || m["client_secret_expires_at"] != float64(0) {
				t.Errorf("%s: client_secret %v, client_id_issued_at %v (created_at %v), client_secret_expires_at %v",
					what, m["client_secret"] != nil, m["client_id_issued_at"], createdAt, m["client_secret_expires_at"])
			}
		}
		wantSecretMembers("POST", r, created)
		if created["client_name"] != "svc" {
			t.Errorf("client_name %v: a member differing in case was taken", created["client_name"])
		}
		for _, k := range []string{"redirect_uris", "logo_uri", "contacts", "Client_Name", "software_version"} {
			if _, ok := created[k]; ok {
				t.Errorf("ignored member %s is in the answer: %s", k, r.Body)
			}
		}
		id := created["client_id"].(string)

		r = adminCall(t, srv, admin, http.MethodGet, "/admin/clients/"+id, nil)
		for _, k := range []string{"client_secret", "client_id_issued_at", "client_secret_expires_at"} {
			if _, ok := r.JSON(t)[k]; ok {
				t.Errorf("GET has %s: %s", k, r.Body)
			}
		}
		r = adminCall(t, srv, admin, http.MethodPost, "/admin/clients/"+id+"/secret", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("rotate: %d %s", r.Status, r.Body)
		}
		wantSecretMembers("rotate", r, r.JSON(t))

		// A representation read back, with read-only and unknown members,
		// goes back with PUT.
		rep := adminCall(t, srv, admin, http.MethodGet, "/admin/clients/"+id, nil).JSON(t)
		rep["client_id_issued_at"], rep["client_secret_expires_at"], rep["redirect_uris"] = 1, 0, []string{"https://x.example/cb"}
		rep["client_name"] = "svc2"
		if r := adminCall(t, srv, admin, http.MethodPut, "/admin/clients/"+id, rep); r.Status != http.StatusOK || r.JSON(t)["client_name"] != "svc2" {
			t.Fatalf("PUT of a representation with read-only and unknown members: %d %s", r.Status, r.Body)
		}

		// A public client gets no secret, nor the members that go with it.
		r = adminRaw(t, srv, admin, http.MethodPost, "/admin/clients", `{"client_name":"spa","token_endpoint_auth_method":"none","redirect_uris":["https://spa.example/cb"]}`)
		if r.Status != http.StatusCreated || strings.Contains(string(r.Body), "client_secret") || strings.Contains(string(r.Body), "client_id_issued_at") {
			t.Fatalf("public client: %d %s", r.Status, r.Body)
		}

		for _, tc := range []struct{ what, method, path, body string }{
			{"unsupported grant", http.MethodPost, "/admin/clients", `{"client_name":"x","grant_types":["implicit"],"redirect_uris":[]}`},
			{"wrong type", http.MethodPost, "/admin/clients", `{"client_name":42}`},
			{"repeated member", http.MethodPost, "/admin/clients", `{"client_name":"x","client_name":"y"}`},
			{"repeated unknown member", http.MethodPost, "/admin/clients", `{"client_name":"x","logo_uri":"a","logo_uri":"b"}`},
			{"client_secret chosen on POST", http.MethodPost, "/admin/clients", `{"client_name":"x","client_secret":"mine"}`},
			{"client_id_issued_at on POST", http.MethodPost, "/admin/clients", `{"client_name":"x","client_id_issued_at":1}`},
			{"client_secret chosen on PUT", http.MethodPut, "/admin/clients/" + id, `{"client_name":"x","client_secret":"mine"}`},
			{"trailing data", http.MethodPost, "/admin/clients", `{"client_name":"x","redirect_uris":[]} {}`},
			{"not an object", http.MethodPost, "/admin/clients", `["client_name"]`},
		} {
			wantAdminError(t, tc.what, adminRaw(t, srv, admin, tc.method, tc.path, tc.body), http.StatusBadRequest, "invalid_request")
		}
		var list []map[string]any
		if err := json.Unmarshal(adminCall(t, srv, admin, http.MethodGet, "/admin/clients", nil).Body, &list); err != nil {
			t.Fatal(err)
		}
		// The admin console's client, which serve registers, is not one of
		// the test's.
		list = slices.DeleteFunc(list, func(c map[string]any) bool { return c["client_id"] == "portcullis-console" })
		if len(list) != 3 {
			t.Fatalf("%d clients after the refused requests, want 3", len(list))
		}
	})
}
