package main

import (
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestStepUpSessionOfCodeRedeemedInParallel: a code redeemed twice
// revokes what the first redemption issued (RFC 6749 §4.1.2), and with it
// the step-up auth_session of that token response (auth_sessions.grant_id).
// When the redemptions run in parallel, the loser revokes the grant the
// moment it finds the code used, which can be before the winner has
// stored its step-up session: that session must not outlive the grant.
// Otherwise whoever won the race with a stolen code and verifier keeps a
// session that stands for the login's password (a fresh second factor
// then yields a code with amr [mfa otp pwd]) although every token of the
// grant is revoked. The losers must get invalid_grant (and revoke), not
// a 500 that revokes nothing.
func TestStepUpSessionOfCodeRedeemedInParallel(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_LOCKOUT_MAX_FAILURES=500", "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=1000"}, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "dave", alicePW)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--audience", audience)
		challengeURL, tokenURL := srv.URL+"/oauth2/authorize-challenge", srv.URL+"/oauth2/token"
		verifier := strings.Repeat("w", 43)
		const rounds, parallel = 20, 4
		for round := range rounds {
			r := proctest.PostForm(t, challengeURL, url.Values{"client_id": {app.ClientID}, "username": {"dave"}, "password": {alicePW},
				"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
			code, _ := r.JSON(t)["authorization_code"].(string)
			if code == "" {
				t.Fatalf("round %d: login: %d %s", round, r.Status, r.Body)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "client_id": {app.ClientID}}.Encode()
			sessions := make([]string, parallel)
			var wg sync.WaitGroup
			for i := range sessions {
				wg.Go(func() {
					r := proctest.PostForm(t, tokenURL, form)
					if r.Status >= 500 {
						t.Errorf("round %d: a parallel redemption: %d %s, want 200 or 400 invalid_grant", round, r.Status, r.Body)
					}
					sessions[i], _ = r.JSON(t)["auth_session"].(string)
				})
			}
			wg.Wait()
			for _, as := range sessions {
				if as == "" {
					continue
				}
				r := proctest.PostForm(t, challengeURL, url.Values{"auth_session": {as}, "password": {alicePW},
					"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
				if body := r.JSON(t); body["error"] != "invalid_session" {
					t.Fatalf("round %d: the step-up auth_session of a code redeemed %d times in parallel outlived its revoked grant: %d %s",
						round, parallel, r.Status, r.Body)
				}
			}
		}
	})
}
