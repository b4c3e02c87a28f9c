package main

import (
	"database/sql"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/firstparty"
)

// TestAuditSecondFactor drives the real binary on both backends: a user
// who must prove a second factor is recorded as logged in (login, success)
// only once the factor is proven at the authorization challenge endpoint;
// the right password alone is login.password (also at the password grant,
// which refuses the user), a wrong code login.second_factor (failure), a
// recovery code mfa.recovery_code_used. No code, secret, password or
// token is in the trail.
func TestAuditSecondFactor(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_LOCKOUT_MAX_FAILURES=50", "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		ctx := t.Context()
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "authorization_code", "--grant-type", "password", "--audience", audience)
		srv.CreateUser(t, "carol", alicePW)
		srv.CLI(t, "", "users", "update", "carol", "--mfa-required=true")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		fp := firstPartyClient(srv, app.ClientID)

		// Enrolment within the login: a wrong code, then the right one.
		_, err := fp.Login(ctx, firstparty.Credentials{Username: "carol", Password: alicePW}, firstparty.Options{})
		ch := asChallenge(t, err)
		if !ch.EnrollmentRequired || ch.TOTPSecret == "" {
			t.Fatalf("enrolment challenge: %+v", ch)
		}
		secret := ch.TOTPSecret
		wrong1 := totpCode(t, secret, time.Now().Add(-10*time.Minute))
		_, err = fp.Continue(ctx, ch, firstparty.Credentials{OTP: wrong1})
		ch = asChallenge(t, err)
		enrolCode := totpCode(t, secret, time.Now())
		tok, err := fp.Continue(ctx, ch, firstparty.Credentials{OTP: enrolCode})
		if err != nil || len(tok.RecoveryCodes) == 0 {
			t.Fatalf("enrolment: %v", err)
		}
		_, claims := proctest.DecodeJWT(t, tok.AccessToken)
		carol := "user:" + claims["sub"].(string)
		evs, _ := auditAll(t, srv, admin)
		if got := actions(evs, carol); !slices.Equal(got, []string{"user.create", "user.mfa_required", "login.password", "mfa.enrol", "login.second_factor", "mfa.confirm", "mfa.recovery_codes", "login"}) {
			t.Fatalf("carol's events after the enrolling login: %v", got)
		}

		// A login with a wrong code, then a recovery code.
		mark := evs[len(evs)-1].ID
		_, err = fp.Login(ctx, firstparty.Credentials{Username: "carol", Password: alicePW}, firstparty.Options{})
		ch = asChallenge(t, err)
		wrong2 := totpCode(t, secret, time.Now().Add(-20*time.Minute))
		_, err = fp.Continue(ctx, ch, firstparty.Credentials{OTP: wrong2})
		ch = asChallenge(t, err)
		tok2, err := fp.Continue(ctx, ch, firstparty.Credentials{RecoveryCode: tok.RecoveryCodes[0]})
		if err != nil {
			t.Fatalf("recovery code: %v", err)
		}
		// The password grant refuses carol: her password was right, her
		// login is not complete.
		r := proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {alicePW}, "client_id": {app.ClientID}}.Encode())
		if r.Status != http.StatusForbidden {
			t.Fatalf("password grant: %d %s", r.Status, r.Body)
		}
		evs, body := auditAll(t, srv, admin)
		var later []auditEvent
		for _, e := range evs {
			if e.ID > mark {
				later = append(later, e)
			}
		}
		if got := actions(later, carol); !slices.Equal(got, []string{"login.password", "login.second_factor", "mfa.recovery_code_used", "login", "login.password"}) {
			t.Fatalf("carol's events of the second login and the password grant: %v", got)
		}
		for _, want := range []struct{ action, actor, outcome string }{
			{"login.password", carol, "success"}, {"login.second_factor", "anonymous", "failure"},
			{"mfa.recovery_code_used", carol, "success"}, {"login", carol, "success"},
		} {
			for _, e := range findEvents(evs, "", want.action, carol) {
				if e.Actor != want.actor || e.Outcome != want.outcome || e.ClientIP != "127.0.0.1" {
					t.Errorf("%s event %+v: want actor %s, outcome %s", want.action, e, want.actor, want.outcome)
				}
			}
		}

		secrets := map[string]string{"TOTP secret": secret, "wrong code 1": wrong1, "wrong code 2": wrong2, "enrolment code": enrolCode,
			"password": alicePW, "access token": tok.AccessToken, "second access token": tok2.AccessToken}
		for i, c := range tok.RecoveryCodes {
			secrets["recovery code "+string(rune('a'+i))] = c
		}
		wantNoSecrets(t, body, secrets)
	})
}

// actions lists the actions of the events on target, in order.
func actions(evs []auditEvent, target string) []string {
	var out []string
	for _, e := range evs {
		if e.Target == target {
			out = append(out, e.Action)
		}
	}
	return out
}

// dropAuditTable drops the audit_events table of srv's database, so that
// every audit event the server writes from then on fails.
func dropAuditTable(t *testing.T, srv *proctest.Server) {
	t.Helper()
	var dsn string
	for _, v := range srv.Env() {
		if d, ok := strings.CutPrefix(v, "PORTCULLIS_DSN="); ok {
			dsn = d
		}
	}
	driver, name, ok := strings.Cut(dsn, "://")
	if !ok {
		t.Fatalf("DSN %q", dsn)
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "DROP TABLE audit_events"); err != nil {
		t.Fatal(err)
	}
}

// TestAuditAccountMFAChanges drives the real binary on both backends: a
// user's own second-factor change through the account API (enrolment,
// confirmation, new recovery codes, removal) commits only with its audit
// event, so when the event cannot be written (the table is gone) the
// change fails and nothing of it is left.
func TestAuditAccountMFAChanges(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		for _, u := range []string{"carol", "dan", "erin"} {
			srv.CreateUser(t, u, alicePassword)
		}
		carol := "Bearer " + userToken(t, srv, app.ClientID, "carol", alicePassword)
		dan := "Bearer " + userToken(t, srv, app.ClientID, "dan", alicePassword)
		erin := "Bearer " + userToken(t, srv, app.ClientID, "erin", alicePassword)
		enrolled(t, srv, carol, alicePassword)
		pending := enrol(t, srv, dan, alicePassword)
		before := listFactors(t, srv, carol)

		dropAuditTable(t, srv)
		failed := func(what string, r proctest.Response) {
			t.Helper()
			if r.Status < 500 {
				t.Fatalf("%s without its audit event: %d %s, want a server error", what, r.Status, r.Body)
			}
		}
		failed("enrolment", accountCall(t, srv, http.MethodPost, "/account/factors/totp", erin, map[string]string{"password": alicePassword}))
		if l := listFactors(t, srv, erin); len(l.Factors) != 0 {
			t.Errorf("a failed enrolment left factors %+v", l)
		}
		failed("confirmation", accountCall(t, srv, http.MethodPost, "/account/factors/totp/"+pending.ID+"/confirm", dan,
			map[string]string{"code": code(t, pending.Secret, time.Now())}))
		if l := listFactors(t, srv, dan); len(l.Factors) != 1 || l.Factors[0].Confirmed || l.RecoveryCodesLeft != 0 {
			t.Errorf("a failed confirmation left %+v, want the factor unconfirmed and no recovery codes", l)
		}
		failed("new recovery codes", accountCall(t, srv, http.MethodPost, "/account/recovery-codes", carol, map[string]string{"password": alicePassword}))
		failed("removal", accountCall(t, srv, http.MethodDelete, "/account/factors/"+before.Factors[0].ID, carol, map[string]string{"password": alicePassword}))
		if l := listFactors(t, srv, carol); len(l.Factors) != 1 || !l.Factors[0].Confirmed || l.RecoveryCodesLeft != before.RecoveryCodesLeft {
			t.Errorf("failed changes left carol with %+v, want %+v", l, before)
		}
	})
}
