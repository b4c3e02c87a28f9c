package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	otptotp "github.com/pquerna/otp/totp"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/firstparty"
)

const alicePW = "purple otter lamp 42"

// totpCode is the RFC 6238 code of secret at t (SHA-1, 6 digits, 30 s),
// computed by a library other than the server's.
func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := otptotp.GenerateCodeCustom(secret, at, otptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// asChallenge returns err as a *firstparty.Challenge or fails.
func asChallenge(t testing.TB, err error) *firstparty.Challenge {
	t.Helper()
	var ch *firstparty.Challenge
	if !errors.As(err, &ch) {
		t.Fatalf("got %v, want insufficient_authorization", err)
	}
	return ch
}

// asError returns err as a *firstparty.Error with the given code or fails.
func asError(t testing.TB, err error, code string) *firstparty.Error {
	t.Helper()
	var e *firstparty.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got %v, want error %s", err, code)
	}
	return e
}

func firstPartyClient(srv *proctest.Server, clientID string) *firstparty.Client {
	return &firstparty.Client{ChallengeURL: srv.URL + "/oauth2/authorize-challenge", TokenURL: srv.URL + "/oauth2/token", ClientID: clientID}
}

// authClaims checks a token's amr, acr and auth_time.
func authClaims(t testing.TB, accessToken string, amr []string, acr string) {
	t.Helper()
	_, c := proctest.DecodeJWT(t, accessToken)
	var got []string
	list, _ := c["amr"].([]any)
	for _, m := range list {
		s, _ := m.(string)
		got = append(got, s)
	}
	if !slices.Equal(got, amr) || c["acr"] != acr {
		t.Fatalf("amr %v acr %v, want %v %q", c["amr"], c["acr"], amr, acr)
	}
	at, ok := c["auth_time"].(float64)
	if !ok || time.Since(time.Unix(int64(at), 0)) > time.Minute || time.Until(time.Unix(int64(at), 0)) > 0 {
		t.Fatalf("auth_time %v, want about now and not ahead", c["auth_time"])
	}
}

// s256 is the PKCE S256 challenge of v (RFC 7636 §4.2).
func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestFirstPartyFlow: draft-ietf-oauth-first-party-apps-04 against the real
// server on both backends, driven by the Go client (oauth/firstparty) and
// by hand-made requests: enrolment of a required factor at the challenge
// endpoint, password + TOTP to a token with amr [mfa otp pwd], the
// password grant refusing the user, wrong and replayed codes, single-use
// auth_session values, recovery codes used once, an auth_session of
// another client, PKCE and code replay at the token endpoint, and a
// DPoP-bound flow.
func TestFirstPartyFlow(t *testing.T) {
	// Wrong codes on purpose, from one address: TestFirstPartyLockout
	// tests the guessing defences.
	portcullis.EachBackend(t, []string{"PORTCULLIS_LOCKOUT_MAX_FAILURES=50"}, func(t *testing.T, srv *proctest.Server) {
		ctx := t.Context()
		srv.CreateUser(t, "alice", alicePW)
		srv.CreateUser(t, "bob", alicePW)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--grant-type", "password", "--audience", audience)
		other := srv.CreateClient(t, "--name", "other", "--public", "--grant-type", "authorization_code", "--audience", audience)
		legacy := srv.CreateClient(t, "--name", "legacy", "--public")
		fp := firstPartyClient(srv, app.ClientID)
		challengeURL, tokenURL := srv.URL+"/oauth2/authorize-challenge", srv.URL+"/oauth2/token"

		// RFC 8414 metadata (draft §8).
		_, _, md := proctest.GetJSON(t, srv.URL+"/.well-known/oauth-authorization-server", nil)
		if md["authorization_challenge_endpoint"] != challengeURL || !slices.Contains(md["grant_types_supported"].([]any), any("authorization_code")) {
			t.Fatalf("metadata: %v", md)
		}

		// A client not registered for the flow (draft §4.1: clients the
		// server does not take for first-party ones).
		r := proctest.PostForm(t, challengeURL, url.Values{"client_id": {legacy.ClientID}, "username": {"alice"}, "password": {alicePW},
			"code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"}}.Encode())
		wantOAuthError(t, r, 400, "unauthorized_client")

		// Enrolment: the multi-factor acr is asked for and alice has no
		// factor, so she enrols one within the login.
		_, err := fp.Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{ACRValues: []string{"2"}})
		ch := asChallenge(t, err)
		if !ch.EnrollmentRequired || ch.TOTPSecret == "" || !strings.HasPrefix(ch.OTPAuthURI, "otpauth://totp/") {
			t.Fatalf("enrolment challenge: %+v", ch)
		}
		secret := ch.TOTPSecret
		enrolCode := totpCode(t, secret, time.Now())
		tok, err := fp.Continue(ctx, ch, firstparty.Credentials{OTP: enrolCode})
		if err != nil {
			t.Fatalf("enrolment: %v", err)
		}
		if len(tok.RecoveryCodes) != 10 || tok.AuthSession == "" {
			t.Fatalf("enrolment: %d recovery codes, auth_session %q", len(tok.RecoveryCodes), tok.AuthSession)
		}
		authClaims(t, tok.AccessToken, []string{"mfa", "otp", "pwd"}, "2")
		recovery := tok.RecoveryCodes

		// The password grant: alice must use the challenge endpoint (the
		// draft's §6.2 answer), with an auth_session when the client may.
		r = proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "client_id": {app.ClientID}}.Encode())
		body := r.JSON(t)
		if r.Status != http.StatusForbidden || body["error"] != "insufficient_authorization" || body["otp_required"] != true || body["auth_session"] == nil {
			t.Fatalf("password grant of an MFA user: %d %s", r.Status, r.Body)
		}
		r = proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "client_id": {legacy.ClientID}}.Encode())
		body = r.JSON(t)
		if r.Status != http.StatusForbidden || body["error"] != "insufficient_authorization" || body["auth_session"] != nil {
			t.Fatalf("password grant of an MFA user, client without the flow: %d %s", r.Status, r.Body)
		}
		// A wrong password says nothing of the second factor.
		wantOAuthError(t, proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wrong password 1"}, "client_id": {app.ClientID}}.Encode()), 400, "invalid_grant")
		// bob has no second factor: the password grant works, amr [pwd].
		btok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {alicePW}, "client_id": {app.ClientID}}.Encode()))
		authClaims(t, btok.AccessToken, []string{"pwd"}, "1")

		// Wrong code, then the old auth_session is used up, then a
		// replayed code (the enrolment's step), then a good one.
		_, err = fp.Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
		ch = asChallenge(t, err)
		if !ch.OTPRequired || ch.EnrollmentRequired || ch.TOTPSecret != "" {
			t.Fatalf("login challenge: %+v", ch)
		}
		_, err = fp.Continue(ctx, ch, firstparty.Credentials{OTP: totpCode(t, secret, time.Now().Add(-10*time.Minute))})
		ch2 := asChallenge(t, err)
		if !ch2.OTPRequired || ch2.AuthSession == ch.AuthSession {
			t.Fatalf("after a wrong code: %+v", ch2)
		}
		_, err = fp.Continue(ctx, ch, firstparty.Credentials{OTP: totpCode(t, secret, time.Now().Add(30*time.Second))})
		asError(t, err, "invalid_session")
		_, err = fp.Continue(ctx, ch2, firstparty.Credentials{OTP: enrolCode})
		ch3 := asChallenge(t, err)
		tok2, err := fp.Continue(ctx, ch3, firstparty.Credentials{OTP: totpCode(t, secret, time.Now().Add(30*time.Second))})
		if err != nil {
			t.Fatalf("login with the next step's code: %v", err)
		}
		authClaims(t, tok2.AccessToken, []string{"mfa", "otp", "pwd"}, "2")

		// A recovery code works once.
		_, err = fp.Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
		if _, err = fp.Continue(ctx, asChallenge(t, err), firstparty.Credentials{RecoveryCode: recovery[0]}); err != nil {
			t.Fatalf("recovery code: %v", err)
		}
		_, err = fp.Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
		_, err = fp.Continue(ctx, asChallenge(t, err), firstparty.Credentials{RecoveryCode: recovery[0]})
		asChallenge(t, err)

		// An auth_session is the client's own.
		_, err = fp.Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
		ch = asChallenge(t, err)
		r = proctest.PostForm(t, challengeURL, url.Values{"client_id": {other.ClientID}, "auth_session": {ch.AuthSession}, "recovery_code": {recovery[1]}}.Encode())
		if body := r.JSON(t); r.Status != 400 || body["error"] != "invalid_session" {
			t.Fatalf("auth_session of another client: %d %s", r.Status, r.Body)
		}

		// By hand: PKCE and code replay at the token endpoint.
		verifier := strings.Repeat("a1b2", 12)
		r = proctest.PostForm(t, challengeURL, url.Values{"client_id": {app.ClientID}, "response_type": {"code"}, "username": {"alice"}, "password": {alicePW},
			"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
		body = r.JSON(t)
		if r.Status != 401 || body["error"] != "insufficient_authorization" || body["otp_required"] != true || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("first step: %d %v %s", r.Status, r.Header, r.Body)
		}
		r = proctest.PostForm(t, challengeURL, url.Values{"auth_session": {body["auth_session"].(string)}, "recovery_code": {recovery[2]}}.Encode())
		body = r.JSON(t)
		code, _ := body["authorization_code"].(string)
		if r.Status != 200 || code == "" {
			t.Fatalf("second step (auth_session alone, as the draft's example): %d %s", r.Status, r.Body)
		}
		redeem := func(v string) proctest.Response {
			return proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}, "client_id": {app.ClientID}}.Encode())
		}
		wantOAuthError(t, redeem(strings.Repeat("x", 48)), 400, "invalid_grant")
		r = redeem(verifier)
		first := proctest.MustToken(t, r)
		stepUp, _ := r.JSON(t)["auth_session"].(string)
		authClaims(t, first.AccessToken, []string{"mfa", "otp", "pwd"}, "2")
		wantOAuthError(t, redeem(verifier), 400, "invalid_grant")
		// The second redemption revoked what the first issued (RFC 6749
		// §4.1.2): its refresh token is dead, and so is the step-up
		// auth_session of its token response.
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, first.RefreshToken)), 400, "invalid_grant")
		r = proctest.PostForm(t, challengeURL, url.Values{"client_id": {app.ClientID}, "auth_session": {stepUp}, "code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
		if body := r.JSON(t); stepUp == "" || body["error"] != "invalid_session" {
			t.Fatalf("step-up auth_session %q of a code redeemed twice: %d %s", stepUp, r.Status, r.Body)
		}

		// DPoP: the auth_session, the code and the tokens are bound to the
		// app's key; the auth_session is useless without it.
		key := dpopKey(t)
		dfp := firstPartyClient(srv, app.ClientID)
		dfp.HTTPClient = &http.Client{Transport: dpop.NewTransport(key, nil)}
		_, err = dfp.Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
		ch = asChallenge(t, err)
		_, err = fp.Continue(ctx, ch, firstparty.Credentials{RecoveryCode: recovery[3]})
		asError(t, err, "invalid_session")
		dtok, err := dfp.Continue(ctx, ch, firstparty.Credentials{RecoveryCode: recovery[3]})
		if err != nil {
			t.Fatalf("DPoP-bound login: %v", err)
		}
		if dtok.Type() != dpop.Scheme || jkt(t, dtok.AccessToken) != key.Thumbprint() {
			t.Fatalf("DPoP-bound login: token_type %q cnf.jkt %q", dtok.Type(), jkt(t, dtok.AccessToken))
		}
	})
}

// TestFirstPartyStepUp: RFC 9470 through draft §7 with the real userapi:
// bob logs in with his password alone (acr 1), userapi's MFA route answers
// insufficient_user_authentication with acr_values, the app goes back to
// the challenge endpoint with the auth_session of its tokens and those
// acr_values, bob proves his password again and enrols a TOTP factor (he
// had none), and the new token (acr 2) passes. A refresh keeps acr.
func TestFirstPartyStepUp(t *testing.T) {
	srv := portcullis.Serve(t)
	api := userapi.Serve(t, srv.URL, audience)
	ctx := t.Context()
	srv.CreateUser(t, "bob", alicePW)
	app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--audience", audience)
	fp := firstPartyClient(srv, app.ClientID)

	tok, err := fp.Login(ctx, firstparty.Credentials{Username: "bob", Password: alicePW}, firstparty.Options{})
	if err != nil {
		t.Fatalf("password-only login: %v", err)
	}
	authClaims(t, tok.AccessToken, []string{"pwd"}, "1")
	if tok.AuthSession == "" {
		t.Fatal("no auth_session with the tokens (draft §6.1)")
	}
	get := func(accessToken string) (int, string) {
		code, h, _ := proctest.GetJSON(t, api+"/users/me/security", http.Header{"Authorization": {"Bearer " + accessToken}})
		return code, h.Get("WWW-Authenticate")
	}
	status, www := get(tok.AccessToken)
	if status != http.StatusUnauthorized || !strings.Contains(www, `error="insufficient_user_authentication"`) || !strings.Contains(www, `acr_values="2"`) {
		t.Fatalf("userapi with acr 1: %d %q", status, www)
	}
	acr := strings.Split(strings.SplitN(strings.SplitN(www, `acr_values="`, 2)[1], `"`, 2)[0], " ")

	_, err = fp.StepUp(ctx, tok.AuthSession, firstparty.Credentials{}, firstparty.Options{ACRValues: acr})
	ch := asChallenge(t, err)
	if !ch.PasswordRequired {
		t.Fatalf("step-up without a factor: %+v, want password_required", ch)
	}
	_, err = fp.Continue(ctx, ch, firstparty.Credentials{Password: alicePW})
	ch = asChallenge(t, err)
	if !ch.EnrollmentRequired || ch.TOTPSecret == "" {
		t.Fatalf("step-up to acr 2 without a factor: %+v, want enrolment", ch)
	}
	up, err := fp.Continue(ctx, ch, firstparty.Credentials{OTP: totpCode(t, ch.TOTPSecret, time.Now())})
	if err != nil {
		t.Fatalf("step-up: %v", err)
	}
	authClaims(t, up.AccessToken, []string{"mfa", "otp", "pwd"}, "2")
	if status, www := get(up.AccessToken); status != http.StatusOK {
		t.Fatalf("userapi after step-up: %d %q", status, www)
	}
	// The used auth_session is gone; the step-up's tokens bring a new one.
	_, err = fp.StepUp(ctx, tok.AuthSession, firstparty.Credentials{}, firstparty.Options{})
	asError(t, err, "invalid_session")
	if up.AuthSession == "" || up.AuthSession == tok.AuthSession {
		t.Fatalf("step-up tokens' auth_session %q", up.AuthSession)
	}
	// A refresh carries amr, acr and auth_time over.
	r := proctest.PostForm(t, srv.URL+"/oauth2/token", refreshForm(app.ClientID, up.RefreshToken))
	authClaims(t, proctest.MustToken(t, r).AccessToken, []string{"mfa", "otp", "pwd"}, "2")
	// bob now has a factor: his old password-only refresh token is sent
	// to the challenge endpoint (draft §6.2).
	r = proctest.PostForm(t, srv.URL+"/oauth2/token", refreshForm(app.ClientID, tok.RefreshToken))
	if body := r.JSON(t); r.Status != http.StatusForbidden || body["error"] != "insufficient_authorization" || body["otp_required"] != true {
		t.Fatalf("refresh of a password-only grant of an MFA user: %d %s", r.Status, r.Body)
	}
}

// TestFirstPartyMFARequired: an administrator's mfa_required, on the user
// (CLI users update) and on the client (clients create --mfa-required),
// makes the next login enrol a factor, and ends password-only grants at
// their next refresh.
func TestFirstPartyMFARequired(t *testing.T) {
	srv := portcullis.Serve(t)
	ctx := t.Context()
	srv.CreateUser(t, "carol", alicePW)
	srv.CreateUser(t, "dave", alicePW)
	app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--grant-type", "password")
	strict := srv.CreateClient(t, "--name", "strict", "--public", "--grant-type", "authorization_code", "--mfa-required")
	tokenURL := srv.URL + "/oauth2/token"

	pw := proctest.MustToken(t, proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {alicePW}, "client_id": {app.ClientID}}.Encode()))
	srv.CLI(t, "", "users", "update", "carol", "--mfa-required=true")
	r := proctest.PostForm(t, tokenURL, refreshForm(app.ClientID, pw.RefreshToken))
	body := r.JSON(t)
	if r.Status != http.StatusForbidden || body["error"] != "insufficient_authorization" || body["totp_enrollment_required"] != true {
		t.Fatalf("refresh after mfa_required: %d %s", r.Status, r.Body)
	}
	// Whoever holds that refresh token cannot enrol a factor with the
	// auth_session it got: the password comes first.
	_, err := firstPartyClient(srv, app.ClientID).StepUp(ctx, body["auth_session"].(string), firstparty.Credentials{}, firstparty.Options{})
	if ch := asChallenge(t, err); !ch.PasswordRequired || ch.TOTPSecret != "" {
		t.Fatalf("auth_session of a refused refresh: %+v, want password_required and no secret", ch)
	}
	r = proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {alicePW}, "client_id": {app.ClientID}}.Encode())
	if body := r.JSON(t); r.Status != http.StatusForbidden || body["error"] != "insufficient_authorization" {
		t.Fatalf("password grant after mfa_required: %d %s", r.Status, r.Body)
	}
	_, err = firstPartyClient(srv, app.ClientID).Login(ctx, firstparty.Credentials{Username: "carol", Password: alicePW}, firstparty.Options{})
	if ch := asChallenge(t, err); !ch.EnrollmentRequired || ch.TOTPSecret == "" {
		t.Fatalf("login of a user required to have MFA: %+v", ch)
	}

	// The strict client requires a factor of everyone; dave has none.
	_, err = firstPartyClient(srv, strict.ClientID).Login(ctx, firstparty.Credentials{Username: "dave", Password: alicePW}, firstparty.Options{})
	ch := asChallenge(t, err)
	if !ch.EnrollmentRequired {
		t.Fatalf("login through an MFA-required client: %+v", ch)
	}
	tok, err := firstPartyClient(srv, strict.ClientID).Continue(ctx, ch, firstparty.Credentials{OTP: totpCode(t, ch.TOTPSecret, time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	authClaims(t, tok.AccessToken, []string{"mfa", "otp", "pwd"}, "2")
	// Through the other client, dave (who now has a factor) still needs it.
	_, err = firstPartyClient(srv, app.ClientID).Login(ctx, firstparty.Credentials{Username: "dave", Password: alicePW}, firstparty.Options{})
	if ch := asChallenge(t, err); !ch.OTPRequired {
		t.Fatalf("dave's next login: %+v", ch)
	}
	// An administrator's reset (lost device): password alone again.
	srv.CLI(t, "", "users", "reset-mfa", "dave")
	if _, err := firstPartyClient(srv, app.ClientID).Login(ctx, firstparty.Credentials{Username: "dave", Password: alicePW}, firstparty.Options{}); err != nil {
		t.Fatalf("login after reset-mfa: %v", err)
	}
}

// TestFirstPartySessionExpiry: an auth_session is refused once its
// lifetime (mfa.auth_session_lifetime, here the minimum 30 s) has passed,
// waited for for real.
func TestFirstPartySessionExpiry(t *testing.T) {
	t.Parallel()
	srv := portcullis.Serve(t, "PORTCULLIS_MFA_AUTH_SESSION_LIFETIME=30s")
	srv.CreateUser(t, "alice", alicePW)
	app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code")
	fp := firstPartyClient(srv, app.ClientID)
	_, err := fp.Login(t.Context(), firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{ACRValues: []string{"2"}})
	ch := asChallenge(t, err)
	time.Sleep(31 * time.Second)
	_, err = fp.Continue(t.Context(), ch, firstparty.Credentials{OTP: totpCode(t, ch.TOTPSecret, time.Now())})
	asError(t, err, "invalid_session")
}

// TestFirstPartyLockoutAcrossReplicas: guessing TOTP codes for a user whose
// password the attacker has is throttled by the account's lockout counters
// in the shared database: two replicas on one MariaDB database, wrong
// codes sent alternately to each, and then even the right code is held
// back (429); a right password in between resets nothing.
func TestFirstPartyLockoutAcrossReplicas(t *testing.T) {
	dsn := proctest.MySQLEnv(t)[0][len("PORTCULLIS_DSN="):]
	reps := startReplicas(t, 2, dsn, "http://issuer.test", "PORTCULLIS_LOCKOUT_MAX_FAILURES=4", "PORTCULLIS_LOCKOUT_DURATION=10m")
	a, b := reps[0], reps[1]
	ctx := t.Context()
	a.CreateUser(t, "alice", alicePW)
	app := a.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "password")
	clientOf := func(s *proctest.Server) *firstparty.Client { return firstPartyClient(s, app.ClientID) }

	// Enrol (acr 2) on replica a.
	_, err := clientOf(a).Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{ACRValues: []string{"2"}})
	ch := asChallenge(t, err)
	secret := ch.TOTPSecret
	if _, err := clientOf(a).Continue(ctx, ch, firstparty.Credentials{OTP: totpCode(t, secret, time.Now())}); err != nil {
		t.Fatal(err)
	}
	wrong := totpCode(t, secret, time.Now().Add(-time.Hour))
	// Password on a (1), wrong code on b (2), a right password through
	// the password grant on a (3, resets nothing), wrong code on a (4).
	_, err = clientOf(a).Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
	ch = asChallenge(t, err)
	_, err = clientOf(b).Continue(ctx, ch, firstparty.Credentials{OTP: wrong})
	ch = asChallenge(t, err)
	r := proctest.PostForm(t, a.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "client_id": {app.ClientID}}.Encode())
	if r.Status != http.StatusForbidden {
		t.Fatalf("password grant: %d %s", r.Status, r.Body)
	}
	_, err = clientOf(a).Continue(ctx, ch, firstparty.Credentials{OTP: wrong})
	ch = asChallenge(t, err)
	// Now the right code, on b, is held back.
	_, err = clientOf(b).Continue(ctx, ch, firstparty.Credentials{OTP: totpCode(t, secret, time.Now().Add(30*time.Second))})
	if e := asError(t, err, "temporarily_unavailable"); e.Status != http.StatusTooManyRequests {
		t.Fatalf("after 4 failures: %+v, want 429", e)
	}
	// And so is the password.
	_, err = clientOf(b).Login(ctx, firstparty.Credentials{Username: "alice", Password: alicePW}, firstparty.Options{})
	asError(t, err, "temporarily_unavailable")
}

// TestREADMEFirstPartyWalkthrough runs the README's first-party walkthrough
// word for word, against a real server and userapi: only the URLs of the
// quickstart's two servers and the `go run` commands (built binaries, the
// CLI on the server's database) are substituted.
func TestREADMEFirstPartyWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("the walkthrough needs openssl, which is not installed")
	}
	totpBin, remove, err := proctest.Build("../../deploy/examples/totp-code")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	srv := portcullis.Serve(t)
	api := startUserAPI(t, srv)
	srv.CreateUser(t, "alice", alicePW)
	block := docBlock(t, "../../README.md", "<!-- first-party walkthrough -->")
	if !strings.Contains(block, "acr_values=2") {
		t.Fatalf("the walkthrough changed; update this test:\n%s", block)
	}
	out := runDoc(t, block, srv, api, "go run ./deploy/examples/totp-code", totpBin)
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
		t.Fatalf("walkthrough's last output is not JSON: %s", out)
	}
	if got["acr"] != "2" || got["preferred_username"] != "alice" || fmt.Sprint(got["amr"]) != "[mfa otp pwd]" {
		t.Fatalf("walkthrough printed %s", out)
	}
}

// TestFirstPartyCodeExpiry: an authorization code is refused once its
// 60 s lifetime (oauth.CodeLifetime) has passed, waited for for real,
// and that refusal burns nothing else: a new login works.
func TestFirstPartyCodeExpiry(t *testing.T) {
	t.Parallel()
	srv := portcullis.Serve(t)
	srv.CreateUser(t, "bob", alicePW)
	app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code")
	verifier := strings.Repeat("c0de", 12)
	r := proctest.PostForm(t, srv.URL+"/oauth2/authorize-challenge", url.Values{"client_id": {app.ClientID}, "username": {"bob"}, "password": {alicePW},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode())
	code, _ := r.JSON(t)["authorization_code"].(string)
	if r.Status != http.StatusOK || code == "" {
		t.Fatalf("challenge: %d %s", r.Status, r.Body)
	}
	time.Sleep(61 * time.Second)
	wantOAuthError(t, proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"code_verifier": {verifier}, "client_id": {app.ClientID}}.Encode()), 400, "invalid_grant")
	if _, err := firstPartyClient(srv, app.ClientID).Login(t.Context(), firstparty.Credentials{Username: "bob", Password: alicePW}, firstparty.Options{}); err != nil {
		t.Fatalf("login after an expired code: %v", err)
	}
}
