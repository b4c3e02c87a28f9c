package adminapi_test

import (
	"net/http"
	"testing"
)

// TestClientSecretResponsesAreNotStored (issue 14 red team): the answers
// that carry a client secret, POST /admin/clients and POST
// /admin/clients/{id}/secret, must not be kept by caches (RFC 9111
// §5.2.2.5 no-store; RFC 6749 §5.1 asks the same of every response
// holding credentials, and the token endpoint does it). 281fc4b and
// 3dc5e56 both send them without Cache-Control.
func TestClientSecretResponsesAreNotStored(t *testing.T) {
	e := newEnv(t)
	r := e.do(t, http.MethodPost, "/admin/clients", map[string]any{"client_name": "svc", "grant_types": []string{"client_credentials"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST /admin/clients (with client_secret): Cache-Control %q, want no-store", cc)
	}
	id := decode[map[string]any](t, r)["client_id"].(string)
	r = e.do(t, http.MethodPost, "/admin/clients/"+id+"/secret", nil)
	if r.status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST /admin/clients/{id}/secret: Cache-Control %q, want no-store", cc)
	}
}
