package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestXOAuth2EveryAuthStyle checks issue 8 item 3 with golang.org/x/oauth2
// at its defaults: a confidential client registered without --auth-method
// works with every AuthStyle, for the password grant, client_credentials,
// and refresh through a TokenSource. (Before: AuthStyleInParams got
// invalid_client.)
func TestXOAuth2EveryAuthStyle(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		signup(t, srv.URL, "bob", "purple otter lamp 42")
		c := srv.CreateClient(t, "--name", "app", "--grant-type", "password", "--grant-type", "refresh_token",
			"--grant-type", "client_credentials", "--scope", "read", "--audience", rfcAudience)
		for name, style := range map[string]oauth2.AuthStyle{
			"AuthStyleInHeader": oauth2.AuthStyleInHeader, "AuthStyleInParams": oauth2.AuthStyleInParams, "AuthStyleAutoDetect": oauth2.AuthStyleAutoDetect,
		} {
			t.Run(name, func(t *testing.T) {
				ctx := t.Context()
				endpoint := oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: style}
				conf := &oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Endpoint: endpoint, Scopes: []string{"read"}}
				tok, err := conf.PasswordCredentialsToken(ctx, "bob", "purple otter lamp 42")
				if err != nil {
					t.Fatalf("password grant: %v", err)
				}
				// Expire it locally so that the TokenSource refreshes.
				tok.Expiry = time.Now().Add(-time.Minute)
				refreshed, err := conf.TokenSource(ctx, tok).Token()
				if err != nil {
					t.Fatalf("refresh through TokenSource: %v", err)
				}
				if refreshed.AccessToken == tok.AccessToken || refreshed.RefreshToken == tok.RefreshToken {
					t.Error("TokenSource did not refresh")
				}
				cc := &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: endpoint.TokenURL, AuthStyle: style}
				if _, err := cc.Token(ctx); err != nil {
					t.Fatalf("client_credentials: %v", err)
				}
			})
		}
	})
}

// TestShortAccessTokenTTL checks issue 8 item 4 against the real binary: an
// access-token lifetime of a few seconds starts (with a warning), tokens
// live exactly that long, and refresh works once they have expired.
// (Before: "access_token_ttl: 5s is outside 1m..24h", no start.)
func TestShortAccessTokenTTL(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_ACCESS_TOKEN_TTL=2s"}, func(t *testing.T, srv *proctest.Server) {
		if out := srv.Output(); !strings.Contains(out, "access_token_ttl is below 1m") {
			t.Errorf("no start-up warning about the short lifetime:\n%s", out)
		}
		c := srv.CreateClient(t, "--name", "svc", "--grant-type", "password", "--grant-type", "refresh_token", "--audience", rfcAudience)
		signup(t, srv.URL, "carol", "purple otter lamp 42")
		auth := []string{"Authorization", proctest.BasicAuth(c.ClientID, c.ClientSecret)}
		r := proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=password&username=carol&password=purple+otter+lamp+42", auth...)
		tok := proctest.MustToken(t, r)
		// RFC 6749 §5.1: expires_in is the lifetime. (Before, red team: fosite
		// floored the remaining time, so a 1 s token said 0, which
		// golang.org/x/oauth2 reads as "never expires".)
		if got := r.JSON(t)["expires_in"]; got != float64(2) {
			t.Errorf("expires_in = %v, want 2", got)
		}
		_, claims := proctest.DecodeJWT(t, tok.AccessToken)
		if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 2 {
			t.Errorf("exp - iat = %v, want 2", exp-iat)
		}
		rs := introspector(t, srv)
		time.Sleep(3 * time.Second)
		if r := proctest.PostForm(t, srv.URL+"/oauth2/introspect", "token="+tok.AccessToken, rs...); r.JSON(t)["active"] != false {
			t.Errorf("expired token introspected as %s", r.Body)
		}
		proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(tok.RefreshToken), auth...))
	})
}
