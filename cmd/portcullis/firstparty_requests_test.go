package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestFirstPartyRequests: the request rules of the authorization challenge
// endpoint (draft-ietf-oauth-first-party-apps-04) against the real server
// on both backends, each by hand: response_type (§5.1), PKCE S256 (RFC
// 7636), a malformed scope (RFC 6749 §4.1.2.1 invalid_scope), an
// auth_session that names no session, malformed or not (§5.2.2.1
// invalid_session), client authentication as at the token endpoint (§4.1)
// and a client_id that names another client (§5.1), a code bound to the
// DPoP key of its challenge request and redeemed only with a proof by
// that key (§9.5.1), and the cap on wrong codes per auth_session (§9.3).
func TestFirstPartyRequests(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_LOCKOUT_MAX_FAILURES=50"}, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "carol", alicePW)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--audience", audience)
		conf := srv.CreateClient(t, "--name", "conf", "--grant-type", "authorization_code", "--audience", audience)
		challengeURL, tokenURL := srv.URL+"/oauth2/authorize-challenge", srv.URL+"/oauth2/token"
		verifier := strings.Repeat("c3d4", 12)
		// login returns a first request of carol's, with the parameters
		// set (or removed, for "") as pairs says.
		login := func(pairs ...string) url.Values {
			v := url.Values{"client_id": {app.ClientID}, "response_type": {"code"}, "username": {"carol"}, "password": {alicePW},
				"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}
			for i := 0; i+1 < len(pairs); i += 2 {
				if pairs[i+1] == "" {
					v.Del(pairs[i])
				} else {
					v.Set(pairs[i], pairs[i+1])
				}
			}
			return v
		}
		post := func(v url.Values, header ...string) proctest.Response {
			return proctest.PostForm(t, challengeURL, v.Encode(), header...)
		}

		t.Run("request rules", func(t *testing.T) {
			wantOAuthError(t, post(login("response_type", "token")), 400, "unsupported_response_type")
			wantOAuthError(t, post(login("code_challenge_method", "plain")), 400, "invalid_request")
			wantOAuthError(t, post(login("code_challenge", "", "code_challenge_method", "")), 400, "invalid_request")
			for _, scope := range []string{"a  b", " a", "a\"b"} {
				wantOAuthError(t, post(login("scope", "x", "scope", scope)), 400, "invalid_scope", scope)
			}
			// Malformed, too long, or well formed but unknown: all are
			// auth_session values that name no session.
			for _, as := range []string{"not a session!", strings.Repeat("A", 200), strings.Repeat("A", 43)} {
				wantOAuthError(t, post(url.Values{"client_id": {app.ClientID}, "auth_session": {as}, "otp": {"123456"}}), 400, "invalid_session", as)
			}
			wantOAuthError(t, post(login("client_id", conf.ClientID)), 401, "invalid_client")
			wantOAuthError(t, post(login("client_id", conf.ClientID, "client_secret", "wrong secret")), 401, "invalid_client")
			wantOAuthError(t, post(login("client_id", app.ClientID), "Authorization", proctest.BasicAuth(conf.ClientID, conf.ClientSecret)), 400, "invalid_request")
			r := post(login("client_id", ""), "Authorization", proctest.BasicAuth(conf.ClientID, conf.ClientSecret))
			if body := r.JSON(t); r.Status != http.StatusOK || body["authorization_code"] == nil {
				t.Fatalf("confidential client with Basic: %d %s", r.Status, r.Body)
			}
		})

		t.Run("DPoP-bound code", func(t *testing.T) {
			key, other := dpopKey(t), dpopKey(t)
			proof := func(k interface {
				Proof(method, uri, accessToken, nonce string) (string, error)
			}, uri string) string {
				p, err := k.Proof(http.MethodPost, uri, "", "")
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			r := post(login(), "DPoP", proof(key, challengeURL))
			code, _ := r.JSON(t)["authorization_code"].(string)
			if r.Status != http.StatusOK || code == "" {
				t.Fatalf("DPoP challenge request: %d %s", r.Status, r.Body)
			}
			redeem := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "client_id": {app.ClientID}}.Encode()
			wantOAuthError(t, proctest.PostForm(t, tokenURL, redeem), 400, "invalid_grant")
			wantOAuthError(t, proctest.PostForm(t, tokenURL, redeem, "DPoP", proof(other, tokenURL)), 400, "invalid_grant")
			tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, redeem, "DPoP", proof(key, tokenURL)))
			if tok.TokenType != "DPoP" || jkt(t, tok.AccessToken) != key.Thumbprint() {
				t.Fatalf("token_type %q cnf.jkt %q, want DPoP bound to the challenge's key", tok.TokenType, jkt(t, tok.AccessToken))
			}
		})

		t.Run("wrong codes per auth_session", func(t *testing.T) {
			r := post(login("acr_values", "2"))
			body := r.JSON(t)
			secret, _ := body["totp_secret"].(string)
			as, _ := body["auth_session"].(string)
			if r.Status != http.StatusUnauthorized || secret == "" || as == "" {
				t.Fatalf("enrolment: %d %s", r.Status, r.Body)
			}
			wrong := totpCode(t, secret, time.Now().Add(-time.Hour))
			for i := 1; i < 5; i++ {
				r = post(url.Values{"client_id": {app.ClientID}, "auth_session": {as}, "otp": {wrong}})
				body = r.JSON(t)
				if r.Status != http.StatusUnauthorized || body["error"] != "insufficient_authorization" || body["auth_session"] == nil {
					t.Fatalf("wrong code %d: %d %s", i, r.Status, r.Body)
				}
				as = body["auth_session"].(string)
			}
			wantOAuthError(t, post(url.Values{"client_id": {app.ClientID}, "auth_session": {as}, "otp": {wrong}}), 400, "access_denied")
			wantOAuthError(t, post(url.Values{"client_id": {app.ClientID}, "auth_session": {as}, "otp": {totpCode(t, secret, time.Now())}}), 400, "invalid_session")
		})
	})
}
