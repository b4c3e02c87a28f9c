package main

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// auditAll returns every event of the trail (one page of 1000) and the
// page's body.
func auditAll(t *testing.T, srv *proctest.Server, admin string) ([]auditEvent, []byte) {
	t.Helper()
	p, body := auditList(t, srv, admin, url.Values{"limit": {"1000"}})
	return p.Events, body
}

// wantNoSecrets fails when the trail's body contains any of secrets.
func wantNoSecrets(t *testing.T, body []byte, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("the test has no %s to look for", name)
		}
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("the audit trail contains the %s", name)
		}
	}
}

// TestAuditTokenReplays drives the real binary on both backends: a used
// refresh token presented again (fosite's reuse detection revokes its
// grant) is recorded as token.refresh_reuse and an authorization code
// redeemed twice (which revokes what the first redemption issued) as
// token.code_replay, each once, by the presenting client, on the grant's
// user, as failures; a refresh that succeeds and a first redemption
// record neither, and no token or code is in the trail.
func TestAuditTokenReplays(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password", "--grant-type", "refresh_token",
			"--grant-type", "authorization_code", "--audience", audience)
		srv.CreateUser(t, "alice", alicePW)
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		tokenURL := srv.URL + "/oauth2/token"

		// Refresh-token reuse.
		first := proctest.MustToken(t, passwordGrant(t, srv, app.ClientID, "alice", alicePW, ""))
		_, claims := proctest.DecodeJWT(t, first.AccessToken)
		alice := "user:" + claims["sub"].(string)
		second := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, first.RefreshToken)))
		if evs, _ := auditAll(t, srv, admin); len(findEvents(evs, "", "token.refresh_reuse", "")) != 0 {
			t.Fatalf("a refresh recorded a reuse: %+v", evs)
		}
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, first.RefreshToken)), http.StatusBadRequest, "invalid_grant")
		evs, body := auditAll(t, srv, admin)
		reuse := findEvents(evs, "", "token.refresh_reuse", "")
		if len(reuse) != 1 || reuse[0].Actor != "client:"+app.ClientID || reuse[0].Target != alice || reuse[0].Outcome != "failure" ||
			reuse[0].ClientIP != "127.0.0.1" || reuse[0].RequestID == "" {
			t.Fatalf("refresh-token reuse events %+v: want one, client:%s on %s, failure", reuse, app.ClientID, alice)
		}
		// The grant is revoked: the rotated token is dead too.
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, second.RefreshToken)), http.StatusBadRequest, "invalid_grant")

		// Authorization-code replay.
		verifier := strings.Repeat("c0de", 12)
		r := proctest.PostForm(t, srv.URL+"/oauth2/authorize-challenge", url.Values{"client_id": {app.ClientID}, "username": {"alice"}, "password": {alicePW},
			"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
		code, _ := r.JSON(t)["authorization_code"].(string)
		if r.Status != http.StatusOK || code == "" {
			t.Fatalf("challenge: %d %s", r.Status, r.Body)
		}
		redeem := func() proctest.Response {
			return proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "client_id": {app.ClientID}}.Encode())
		}
		redeemed := proctest.MustToken(t, redeem())
		if evs, _ := auditAll(t, srv, admin); len(findEvents(evs, "", "token.code_replay", "")) != 0 {
			t.Fatalf("a first redemption recorded a replay: %+v", evs)
		}
		wantOAuthError(t, redeem(), http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, redeemed.RefreshToken)), http.StatusBadRequest, "invalid_grant")
		evs, body2 := auditAll(t, srv, admin)
		replay := findEvents(evs, "", "token.code_replay", "")
		if len(replay) != 1 || replay[0].Actor != "client:"+app.ClientID || replay[0].Target != alice || replay[0].Outcome != "failure" {
			t.Fatalf("code replay events %+v: want one, client:%s on %s, failure", replay, app.ClientID, alice)
		}

		// Parallel redemptions: every loser, whether it finds the code
		// redeemed (fosite's handler) or loses the redemption's conditional
		// update (TokenHandler), revokes the grant and records one replay.
		losers := 0
		var mu sync.Mutex
		for round := range 10 {
			r := proctest.PostForm(t, srv.URL+"/oauth2/authorize-challenge", url.Values{"client_id": {app.ClientID}, "username": {"alice"}, "password": {alicePW},
				"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
			code, _ := r.JSON(t)["authorization_code"].(string)
			if code == "" {
				t.Fatalf("round %d: challenge: %d %s", round, r.Status, r.Body)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "client_id": {app.ClientID}}.Encode()
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					r := proctest.PostForm(t, tokenURL, form)
					switch {
					case r.Status == http.StatusOK:
					case r.Status == http.StatusBadRequest && r.JSON(t)["error"] == "invalid_grant":
						mu.Lock()
						losers++
						mu.Unlock()
					default:
						t.Errorf("round %d: a parallel redemption: %d %s", round, r.Status, r.Body)
					}
				})
			}
			wg.Wait()
		}
		evs, _ = auditAll(t, srv, admin)
		if n := len(findEvents(evs, "client:"+app.ClientID, "token.code_replay", alice)); n != 1+losers || losers != 30 {
			t.Errorf("%d code replay events after %d parallel losers (want 30) and one replay before", n, losers)
		}

		wantNoSecrets(t, append(body, body2...), map[string]string{"refresh token": first.RefreshToken, "rotated refresh token": second.RefreshToken,
			"access token": first.AccessToken, "code": code, "verifier": verifier, "redeemed refresh token": redeemed.RefreshToken, "password": alicePW})
	})
}

// TestAuditReplayRevokesWithoutTrail: a replay's revocation is a security
// response and must not depend on the audit trail: with the audit table
// gone (every event fails), a used refresh token presented again and a
// code redeemed again still revoke their grants.
func TestAuditReplayRevokesWithoutTrail(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password", "--grant-type", "refresh_token",
			"--grant-type", "authorization_code", "--audience", audience)
		srv.CreateUser(t, "alice", alicePW)
		tokenURL := srv.URL + "/oauth2/token"
		dropAuditTable(t, srv)

		first := proctest.MustToken(t, passwordGrant(t, srv, app.ClientID, "alice", alicePW, ""))
		second := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, first.RefreshToken)))
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, first.RefreshToken)), http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, second.RefreshToken)), http.StatusBadRequest, "invalid_grant")

		verifier := strings.Repeat("c0de", 12)
		r := proctest.PostForm(t, srv.URL+"/oauth2/authorize-challenge", url.Values{"client_id": {app.ClientID}, "username": {"alice"}, "password": {alicePW},
			"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
		code, _ := r.JSON(t)["authorization_code"].(string)
		if code == "" {
			t.Fatalf("challenge: %d %s", r.Status, r.Body)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "client_id": {app.ClientID}}.Encode()
		redeemed := proctest.MustToken(t, proctest.PostForm(t, tokenURL, form))
		wantOAuthError(t, proctest.PostForm(t, tokenURL, form), http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, redeemed.RefreshToken)), http.StatusBadRequest, "invalid_grant")
	})
}
