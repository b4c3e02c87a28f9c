package main

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/oauth/firstparty"
)

// TestFirstPartyTokenAtAdminAPI: the access token a code of the
// first-party flow redeems for is accepted by the APIs the server serves
// itself, as the admin console needs. It was refused (401 invalid_token)
// until refreshed: redeeming the code re-read the stored code session into
// the request's session after the token handler had set nbf, so the token
// had no nbf, which the server's own verification requires.
func TestFirstPartyTokenAtAdminAPI(t *testing.T) {
	srv := portcullis.Serve(t)
	srv.CLI(t, consolePassword+"\n", "users", "create", "--username", consoleAdmin, "--password-stdin", "--role", "admin")
	fp := firstPartyClient(srv, "portcullis-console")
	tok, err := fp.Login(t.Context(), firstparty.Credentials{Username: consoleAdmin, Password: consolePassword},
		firstparty.Options{Scope: []string{"admin"}})
	if err != nil {
		t.Fatalf("first-party login as the console: %v", err)
	}
	if !strings.Contains(string(decodePayload(t, tok.AccessToken)), `"nbf":`) {
		t.Errorf("access token claims %s: no nbf", decodePayload(t, tok.AccessToken))
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.AdminURL+"/admin/keys", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/keys with the redeemed token: %d, want 200", resp.StatusCode)
	}
}

// decodePayload returns the decoded payload (claims) of a compact JWS.
func decodePayload(t *testing.T, jws string) []byte {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}
