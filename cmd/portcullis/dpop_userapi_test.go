package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// TestDPoPUserAPI: the real server and the real userapi, a Go client using
// x/oauth2 with dpop.Transport (the way deploy/examples/dpop-client does):
// the password grant returns a DPoP-bound token, userapi accepts it with
// the transport's proofs, before and after a refresh, and refuses it as a
// bearer token and with another key's proofs; an unbound token of the same
// client still works as a bearer token.
func TestDPoPUserAPI(t *testing.T) {
	srv := portcullis.Serve(t)
	api := userapi.Serve(t, srv.URL, audience)
	srv.CreateUser(t, "alice", "purple otter lamp 42")
	pub := srv.CreateClient(t, "--name", "spa", "--public", "--audience", audience)
	conf := &oauth2.Config{
		ClientID: pub.ClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	key, thief := dpopKey(t), dpopKey(t)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: dpop.NewTransport(key, nil)})

	tok, err := conf.PasswordCredentialsToken(ctx, "alice", "purple otter lamp 42")
	if err != nil {
		t.Fatalf("password grant with DPoP: %v", err)
	}
	if tok.Type() != dpop.Scheme || jkt(t, tok.AccessToken) != key.Thumbprint() {
		t.Fatalf("token_type %q, cnf.jkt %q; want DPoP bound to %q", tok.Type(), jkt(t, tok.AccessToken), key.Thumbprint())
	}

	get := func(t *testing.T, client *http.Client, auth string) (int, map[string]any, *http.Response) {
		t.Helper()
		h := http.Header{}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		status, hdr, body := proctest.GetJSONVia(t, client, api+"/users/me", h)
		return status, body, &http.Response{StatusCode: status, Header: hdr}
	}

	t.Run("bound token with proofs", func(t *testing.T) {
		// conf.Client sends "Authorization: DPoP" (the token type), the
		// transport a proof with ath; refreshing goes through it too.
		client := conf.Client(ctx, tok)
		for i := range 2 {
			status, body, _ := get(t, client, "")
			if status != http.StatusOK || body["username"] != "alice" || body["client_id"] != pub.ClientID {
				t.Fatalf("request %d: %d %v", i, status, body)
			}
		}
		expired := *tok
		expired.AccessToken, expired.Expiry = "", time.Now().Add(-time.Hour)
		refreshed, err := conf.TokenSource(ctx, &expired).Token()
		if err != nil {
			t.Fatalf("refresh with DPoP: %v", err)
		}
		if refreshed.Type() != dpop.Scheme || jkt(t, refreshed.AccessToken) != key.Thumbprint() || refreshed.AccessToken == tok.AccessToken {
			t.Fatalf("refreshed token_type %q, cnf.jkt %q", refreshed.Type(), jkt(t, refreshed.AccessToken))
		}
		status, body, _ := get(t, oauth2.NewClient(ctx, oauth2.StaticTokenSource(refreshed)), "")
		if status != http.StatusOK || body["username"] != "alice" {
			t.Fatalf("after refresh: %d %v", status, body)
		}
	})
	t.Run("bound token as bearer", func(t *testing.T) {
		status, body, resp := get(t, http.DefaultClient, "Bearer "+tok.AccessToken)
		if status != http.StatusUnauthorized || body["error"] != "invalid_token" ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
			t.Fatalf("%d %v %q", status, body, resp.Header.Values("WWW-Authenticate"))
		}
	})
	t.Run("bound token with another key's proofs", func(t *testing.T) {
		client := &http.Client{Transport: dpop.NewTransport(thief, nil)}
		status, body, resp := get(t, client, "DPoP "+tok.AccessToken)
		if status != http.StatusUnauthorized || body["error"] != "invalid_token" ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `DPoP error="invalid_token"`) {
			t.Fatalf("%d %v %q", status, body, resp.Header.Values("WWW-Authenticate"))
		}
	})
	t.Run("unbound token as bearer", func(t *testing.T) {
		plain, err := conf.PasswordCredentialsToken(t.Context(), "alice", "purple otter lamp 42")
		if err != nil {
			t.Fatal(err)
		}
		if jkt(t, plain.AccessToken) != "" {
			t.Fatalf("token without a proof is bound: %q", jkt(t, plain.AccessToken))
		}
		if status, body, _ := get(t, http.DefaultClient, "Bearer "+plain.AccessToken); status != http.StatusOK {
			t.Fatalf("%d %v", status, body)
		}
	})
}
