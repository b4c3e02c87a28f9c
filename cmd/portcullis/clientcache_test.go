package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestCLIClientChangesWithinCacheTTL: a running server caches clients for
// client authentication; what the CLI (another process) changes is honoured
// within client_cache.ttl: a rotated-out secret, then the deleted client,
// are refused with invalid_client by every request sent after the bound.
// (Within the bound a deleted client's request may also fail with
// server_error, when a refresh token's row would refer to a client that is
// gone.)
func TestCLIClientChangesWithinCacheTTL(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		c := srv.CreateClient(t, "--name", "svc", "--grant-type", "client_credentials")
		token := func(secret string) proctest.Response {
			return proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials",
				"Authorization", proctest.BasicAuth(c.ClientID, secret))
		}
		refused := func(what string, r proctest.Response) {
			t.Helper()
			if r.Status != http.StatusUnauthorized || r.JSON(t)["error"] != "invalid_client" {
				t.Fatalf("%s: %d %s, want 401 invalid_client", what, r.Status, r.Body)
			}
		}
		proctest.MustToken(t, token(c.ClientSecret)) // the server has cached the client

		var rot proctest.Client
		if err := json.Unmarshal(srv.CLI(t, "", "clients", "rotate-secret", c.ClientID, "--output", "json"), &rot); err != nil || rot.ClientSecret == "" {
			t.Fatalf("rotate-secret: %+v %v", rot, err)
		}
		var r proctest.Response
		withinClientCacheTTL(t, time.Now(), "rotated-out secret", func() bool {
			r = token(c.ClientSecret)
			return r.Status != http.StatusOK
		})
		refused("old secret after rotate-secret", r)
		proctest.MustToken(t, token(rot.ClientSecret))

		srv.CLI(t, "", "clients", "delete", c.ClientID)
		// Until the server reads the client again, its requests may still
		// get (stateless) access tokens, or fail to store a refresh token
		// for a client that is gone (500, once: the failure drops the
		// entry).
		withinClientCacheTTL(t, time.Now(), "deleted client", func() bool {
			r = token(rot.ClientSecret)
			return r.Status != http.StatusOK && r.Status != http.StatusInternalServerError
		})
		refused("deleted client", r)
	})
}
