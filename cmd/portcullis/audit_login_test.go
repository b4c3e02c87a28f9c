package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/firstparty"
)

// TestAuditOneLoginEventPerLogin drives the real binary on both backends
// and counts the audit events of one successful login through each path:
// a complete login is recorded as login (success) exactly once, and the
// right password of a login that a second factor must still complete as
// login.password once, whether the second factor is the user's own, or
// is required by the client or asked for by the request (acr_values) and
// enrolled within the login. Paths: the password grant, the first-party
// challenge flow without and with TOTP, with enrolment required by the
// client and by acr_values, and the account API's re-authentication.
// Before, a login whose second factor was required by the client or the
// request recorded login twice: once for the password, once at the end.
func TestAuditOneLoginEventPerLogin(t *testing.T) {
	env := []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0", "PORTCULLIS_LOCKOUT_MAX_FAILURES=50"}
	portcullis.EachBackend(t, env, func(t *testing.T, srv *proctest.Server) {
		ctx := t.Context()
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "password")
		strict := srv.CreateClient(t, "--name", "strict", "--public", "--grant-type", "authorization_code", "--mfa-required")
		id := map[string]string{}
		for _, name := range []string{"pgrant", "plain", "totp", "byclient", "byacr", "reauth"} {
			srv.CreateUser(t, name, alicePassword)
			var u lockJSON
			if err := json.Unmarshal(srv.CLI(t, "", "users", "get", name, "--output", "json"), &u); err != nil {
				t.Fatal(err)
			}
			id[name] = "user:" + u.ID
		}
		last := func() int64 {
			evs, _ := auditAll(t, srv, admin)
			return evs[len(evs)-1].ID
		}
		// count returns the events of user since mark by action.
		count := func(mark int64, user string) map[string]int {
			evs, _ := auditAll(t, srv, admin)
			n := map[string]int{}
			for _, e := range evs {
				if e.ID > mark && e.Target == id[user] {
					n[e.Action+"/"+e.Outcome]++
				}
			}
			return n
		}
		want := func(what string, got map[string]int, logins, passwords int) {
			t.Helper()
			if got["login/success"] != logins || got["login.password/success"] != passwords || got["login/failure"] != 0 {
				t.Errorf("%s: events %v, want login %d time(s) and login.password %d time(s)", what, got, logins, passwords)
			}
		}

		// The password grant.
		mark := last()
		proctest.MustToken(t, passwordGrant(t, srv, app.ClientID, "pgrant", alicePassword, ""))
		want("password grant", count(mark, "pgrant"), 1, 0)

		// The challenge flow, no second factor.
		mark = last()
		if _, err := firstPartyClient(srv, app.ClientID).Login(ctx, firstparty.Credentials{Username: "plain", Password: alicePassword}, firstparty.Options{}); err != nil {
			t.Fatalf("challenge login without TOTP: %v", err)
		}
		want("challenge flow without TOTP", count(mark, "plain"), 1, 0)

		// The challenge flow with the user's TOTP.
		totpTok := "Bearer " + userToken(t, srv, app.ClientID, "totp", alicePassword)
		e := enrol(t, srv, totpTok, alicePassword)
		recoveryCodes(t, "confirm", accountCall(t, srv, http.MethodPost, "/account/factors/totp/"+e.ID+"/confirm", totpTok,
			map[string]string{"code": code(t, e.Secret, time.Now())}))
		mark = last()
		fp := firstPartyClient(srv, app.ClientID)
		_, err := fp.Login(ctx, firstparty.Credentials{Username: "totp", Password: alicePassword}, firstparty.Options{})
		ch := asChallenge(t, err)
		if _, err := fp.Continue(ctx, ch, firstparty.Credentials{OTP: code(t, e.Secret, time.Now().Add(30*time.Second))}); err != nil {
			t.Fatalf("challenge login with TOTP: %v", err)
		}
		want("challenge flow with TOTP", count(mark, "totp"), 1, 1)

		// Enrolment within the login, required by the client, then by the
		// request's acr_values.
		for _, c := range []struct {
			user, clientID string
			opts           firstparty.Options
		}{{"byclient", strict.ClientID, firstparty.Options{}}, {"byacr", app.ClientID, firstparty.Options{ACRValues: []string{"2"}}}} {
			mark = last()
			fp := firstPartyClient(srv, c.clientID)
			_, err := fp.Login(ctx, firstparty.Credentials{Username: c.user, Password: alicePassword}, c.opts)
			ch := asChallenge(t, err)
			if !ch.EnrollmentRequired || ch.TOTPSecret == "" {
				t.Fatalf("%s: want an enrolment challenge, got %+v", c.user, ch)
			}
			if _, err := fp.Continue(ctx, ch, firstparty.Credentials{OTP: totpCode(t, ch.TOTPSecret, time.Now())}); err != nil {
				t.Fatalf("%s: enrolment within the login: %v", c.user, err)
			}
			want("challenge flow with enrolment for "+c.user, count(mark, c.user), 1, 1)
		}

		// The account API's re-authentication, without and with a factor.
		reauth := "Bearer " + userToken(t, srv, app.ClientID, "reauth", alicePassword)
		mark = last()
		enrol(t, srv, reauth, alicePassword) // asks for the password
		want("account re-authentication", count(mark, "reauth"), 1, 0)
		mark = last()
		recoveryCodes(t, "new recovery codes", accountCall(t, srv, http.MethodPost, "/account/recovery-codes", totpTok, map[string]string{"password": alicePassword}))
		want("account re-authentication with a factor", count(mark, "totp"), 1, 0)

		// The password grant refuses a user with a factor: the password
		// was right, no login completed.
		mark = last()
		r := proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"totp"}, "password": {alicePassword}, "client_id": {app.ClientID}}.Encode())
		if r.Status != http.StatusForbidden {
			t.Fatalf("password grant for a user with a factor: %d %s", r.Status, r.Body)
		}
		want("refused password grant", count(mark, "totp"), 0, 1)

		// Likewise through a client that requires a second factor, for a
		// user without one.
		strictPW := srv.CreateClient(t, "--name", "strict-pw", "--public", "--grant-type", "password", "--mfa-required")
		mark = last()
		r = proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"pgrant"}, "password": {alicePassword}, "client_id": {strictPW.ClientID}}.Encode())
		if r.Status != http.StatusForbidden {
			t.Fatalf("password grant through a client that requires MFA: %d %s", r.Status, r.Body)
		}
		want("password grant refused by the client's mfa_required", count(mark, "pgrant"), 0, 1)
	})
}
