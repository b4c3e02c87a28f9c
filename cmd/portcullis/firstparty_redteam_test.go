package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/firstparty"
)

// TestRefreshCannotEnrolFactor: a refresh token proves no factor. When an
// administrator requires a second factor after a password-only login, the
// refresh is refused with an auth_session, and that session must ask for
// the password before it hands out the secret of a new TOTP factor:
// otherwise whoever holds the refresh token (no password) enrols their own
// authenticator on the account, gets its recovery codes and a token with
// acr "2", and the user is locked out of their second factor.
func TestRefreshCannotEnrolFactor(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		ctx := t.Context()
		srv.CreateUser(t, "alice", alicePW)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--audience", audience)
		fp := firstPartyClient(srv, app.ClientID)
		challengeURL, tokenURL := srv.URL+"/oauth2/authorize-challenge", srv.URL+"/oauth2/token"

		tok, err := fp.Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
		if err != nil || tok.RefreshToken == "" {
			t.Fatalf("password-only login: %v", err)
		}
		authClaims(t, tok.AccessToken, []string{"pwd"}, "1")
		srv.CLI(t, "", "users", "update", "alice", "--mfa-required=true")

		// The thief has the refresh token only.
		r := proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, tok.RefreshToken))
		body := r.JSON(t)
		as, _ := body["auth_session"].(string)
		if r.Status != http.StatusForbidden || body["error"] != "insufficient_authorization" || as == "" {
			t.Fatalf("refresh of a password-only grant of an MFA-required user: %d %s", r.Status, r.Body)
		}
		verifier := strings.Repeat("c3d4", 12)
		r = proctest.PostForm(t, challengeURL, url.Values{"auth_session": {as}, "code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
		body = r.JSON(t)
		if body["totp_secret"] != nil || body["totp_enrollment_required"] == true || body["password_required"] != true {
			t.Fatalf("auth_session of a refresh, no password: %d %s; want password_required and no TOTP secret", r.Status, r.Body)
		}
		// With the password, enrolment goes on.
		r = proctest.PostForm(t, challengeURL, url.Values{"auth_session": {body["auth_session"].(string)}, "password": {alicePW}}.Encode())
		if body = r.JSON(t); body["totp_enrollment_required"] != true || body["totp_secret"] == nil {
			t.Fatalf("auth_session of a refresh, with the password: %d %s", r.Status, r.Body)
		}
	})
}
