package oauth_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestDecodeCompactOnly: the server's token check (introspection, the
// admin API, revocation) takes its access tokens in the JWS compact
// serialization only (RFC 9068 §2.1, RFC 8725 §3.1 via oauth/jws), exactly
// as issued: the JSON serializations of RFC 7515 §7.2 (flattened and
// general) and whitespace inside the compact form are refused, although
// they carry the same header, payload and valid signature.
func TestDecodeCompactOnly(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	e.user(t, "ivy")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	tok, err := e.conf(c, "", oauth2.AuthStyleInParams).PasswordCredentialsToken(t.Context(), "ivy", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	if err := oauth.DecodeAccessToken(t.Context(), e.Keys, tok.AccessToken); err != nil {
		t.Fatalf("the issued token: %v", err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	jsonOf := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct{ name, token string }{
		{"RFC 7515 §7.2.2 flattened JSON serialization", jsonOf(map[string]string{
			"protected": parts[0], "payload": parts[1], "signature": parts[2]})},
		{"RFC 7515 §7.2.1 general JSON serialization", jsonOf(map[string]any{
			"payload": parts[1], "signatures": []map[string]string{{"protected": parts[0], "signature": parts[2]}}})},
		{"flattened JSON serialization with whitespace", "{\n \"protected\": \"" + parts[0] + "\",\n \"payload\": \"" +
			parts[1] + "\",\n \"signature\": \"" + parts[2] + "\"\n}"},
		{"space inside the header", parts[0][:4] + " " + parts[0][4:] + "." + parts[1] + "." + parts[2]},
		{"line break inside the payload", parts[0] + "." + parts[1][:4] + "\n" + parts[1][4:] + "." + parts[2]},
		{"leading whitespace", " " + tok.AccessToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := oauth.DecodeAccessToken(t.Context(), e.Keys, tc.token); err == nil {
				t.Errorf("Decode accepted %.80q", tc.token)
			}
			// Through fosite, as introspection and the admin API see it.
			if _, _, err := e.Provider.IntrospectToken(context.Background(), tc.token, fosite.AccessToken, oauth.NewSession()); err == nil {
				t.Errorf("IntrospectToken accepted %.80q", tc.token)
			}
		})
	}
}
