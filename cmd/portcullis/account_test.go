package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

const (
	alicePassword = "purple otter lamp 42"
	bobPassword   = "green walrus desk 77"
)

// accountCall sends a request to the account API of srv with the
// Authorization header authz ("" for none) and body as JSON (none when
// nil), plus header pairs.
func accountCall(t *testing.T, srv *proctest.Server, method, path, authz string, body any, header ...string) proctest.Response {
	t.Helper()
	var b *bytes.Reader
	ct := ""
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		b, ct = bytes.NewReader(j), "application/json"
	}
	if authz != "" {
		header = append(header, "Authorization", authz)
	}
	if b == nil {
		return proctest.Do(t, method, srv.URL+path, ct, nil, header...)
	}
	return proctest.Do(t, method, srv.URL+path, ct, b, header...)
}

// wantStatus fails the test unless r has status want and, as every answer
// of the account API, Cache-Control: no-store.
func wantStatus(t *testing.T, what string, r proctest.Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, want, r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%s: Cache-Control %q, want no-store", what, r.Header.Get("Cache-Control"))
	}
}

// wantError fails the test unless r is a JSON error with status and code.
func wantError(t *testing.T, what string, r proctest.Response, status int, code string) {
	t.Helper()
	wantStatus(t, what, r, status)
	if got := r.JSON(t)["error"]; got != code {
		t.Fatalf("%s: error %v, want %s: %s", what, got, code, r.Body)
	}
	if status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("%s: 401 without WWW-Authenticate", what)
	}
}

// userToken gets an access token for username with the password grant.
func userToken(t *testing.T, srv *proctest.Server, clientID, username, password string) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}, "client_id": {clientID}}
	return proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", form.Encode())).AccessToken
}

// factorList is GET /account/factors.
type factorList struct {
	Factors []struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		Confirmed bool      `json:"confirmed"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"factors"`
	RecoveryCodesLeft int `json:"recovery_codes_left"`
}

func listFactors(t *testing.T, srv *proctest.Server, authz string) factorList {
	t.Helper()
	r := accountCall(t, srv, http.MethodGet, "/account/factors", authz, nil)
	wantStatus(t, "GET /account/factors", r, http.StatusOK)
	var l factorList
	if err := json.Unmarshal(r.Body, &l); err != nil || l.Factors == nil {
		t.Fatalf("GET /account/factors: %s: %v", r.Body, err)
	}
	return l
}

// enrolment is the answer of POST /account/factors/totp.
type enrolment struct {
	ID         string `json:"id"`
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png"`
}

func enrol(t *testing.T, srv *proctest.Server, authz, password string) enrolment {
	t.Helper()
	r := accountCall(t, srv, http.MethodPost, "/account/factors/totp", authz, map[string]string{"password": password})
	wantStatus(t, "enrol", r, http.StatusCreated)
	var e enrolment
	if err := json.Unmarshal(r.Body, &e); err != nil || e.ID == "" || e.Secret == "" {
		t.Fatalf("enrol: %s: %v", r.Body, err)
	}
	return e
}

// code is the TOTP code of secret now (RFC 6238, SHA-1, 6 digits, 30 s).
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func recoveryCodes(t *testing.T, what string, r proctest.Response) []string {
	t.Helper()
	wantStatus(t, what, r, http.StatusOK)
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || len(out.RecoveryCodes) != 10 {
		t.Fatalf("%s: %s: want 10 recovery codes (%v)", what, r.Body, err)
	}
	return out.RecoveryCodes
}

// TestAccountFactors: the account API of the real server on both
// backends, through a TOTP factor's life: enrolment (password re-entered;
// an unfinished one is replaced), confirmation with a code computed from
// the returned secret (a code sent again is refused), listing, recovery
// codes regenerated, removal; who may call it (no token: 401 with a
// challenge; a client's token: 403; another user's token cannot touch the
// factor: 404); JSON only.
func TestAccountFactors(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", alicePassword)
		srv.CreateUser(t, "bob", bobPassword)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		svc := srv.CreateClient(t, "--name", "svc", "--grant-type", "client_credentials")
		alice := "Bearer " + userToken(t, srv, app.ClientID, "alice", alicePassword)
		bob := "Bearer " + userToken(t, srv, app.ClientID, "bob", bobPassword)

		// Who may call.
		r := accountCall(t, srv, http.MethodGet, "/account/factors", "", nil)
		wantError(t, "no token", r, http.StatusUnauthorized, "unauthorized")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Bearer realm="portcullis-account"`) {
			t.Fatalf("no token: WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
		}
		wantError(t, "forged token", accountCall(t, srv, http.MethodGet, "/account/factors", "Bearer x.y.z", nil), http.StatusUnauthorized, "unauthorized")
		cc := "Bearer " + srv.ClientCredentialsToken(t, svc, "").AccessToken
		wantError(t, "client_credentials token", accountCall(t, srv, http.MethodGet, "/account/factors", cc, nil), http.StatusForbidden, "forbidden")
		wantError(t, "client_credentials token enrolling",
			accountCall(t, srv, http.MethodPost, "/account/factors/totp", cc, map[string]string{"password": alicePassword}), http.StatusForbidden, "forbidden")

		if l := listFactors(t, srv, alice); len(l.Factors) != 0 || l.RecoveryCodesLeft != 0 {
			t.Fatalf("new user's factors: %+v", l)
		}

		// JSON only; the password is checked as a login.
		r = proctest.Do(t, http.MethodPost, srv.URL+"/account/factors/totp", "text/plain", strings.NewReader(`{"password":"`+alicePassword+`"}`), "Authorization", alice)
		wantError(t, "text/plain body", r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		r = accountCall(t, srv, http.MethodPost, "/account/factors/totp", alice, map[string]string{"password": bobPassword})
		wantError(t, "wrong password", r, http.StatusUnauthorized, "invalid_password")
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="portcullis-account"` {
			t.Fatalf("wrong password: WWW-Authenticate %q, want the realm without an error (the token is fine)", got)
		}
		wantError(t, "unknown member", accountCall(t, srv, http.MethodPost, "/account/factors/totp", alice, map[string]string{"password": alicePassword, "user": "bob"}),
			http.StatusBadRequest, "invalid_request")

		// Enrolment; a second one replaces the unfinished first.
		first := enrol(t, srv, alice, alicePassword)
		e := enrol(t, srv, alice, alicePassword)
		if e.ID == first.ID || e.Secret == first.Secret {
			t.Fatal("a second enrolment returned the first one's factor")
		}
		if !strings.HasPrefix(e.OTPAuthURI, "otpauth://totp/") || !strings.Contains(e.OTPAuthURI, "secret="+e.Secret) {
			t.Fatalf("otpauth_uri %q", e.OTPAuthURI)
		}
		png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e.QRPNG, "data:image/png;base64,"))
		if !strings.HasPrefix(e.QRPNG, "data:image/png;base64,") || err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("qr_png is not a PNG data URL: %.60q (%v)", e.QRPNG, err)
		}
		l := listFactors(t, srv, alice)
		if len(l.Factors) != 1 || l.Factors[0].ID != e.ID || l.Factors[0].Type != "totp" || l.Factors[0].Confirmed || l.Factors[0].CreatedAt.IsZero() {
			t.Fatalf("factors after enrolment: %+v, want only %s unconfirmed", l, e.ID)
		}

		// Bob's token cannot touch alice's factor.
		confirmPath := "/account/factors/totp/" + e.ID + "/confirm"
		wantError(t, "bob confirms alice's factor", accountCall(t, srv, http.MethodPost, confirmPath, bob, map[string]string{"code": code(t, e.Secret, time.Now())}),
			http.StatusNotFound, "not_found")
		wantError(t, "bob removes alice's factor", accountCall(t, srv, http.MethodDelete, "/account/factors/"+e.ID, bob, map[string]string{"password": bobPassword}),
			http.StatusNotFound, "not_found")

		// Confirmation.
		wantError(t, "wrong code", accountCall(t, srv, http.MethodPost, confirmPath, alice, map[string]string{"code": code(t, e.Secret, time.Now().Add(10*time.Minute))}),
			http.StatusUnauthorized, "invalid_code")
		c := code(t, e.Secret, time.Now())
		codes := recoveryCodes(t, "confirm", accountCall(t, srv, http.MethodPost, confirmPath, alice, map[string]string{"code": c}))
		r = accountCall(t, srv, http.MethodPost, confirmPath, alice, map[string]string{"code": c})
		if r.Status == http.StatusOK {
			t.Fatalf("the confirming code sent again was accepted: %s", r.Body)
		}
		l = listFactors(t, srv, alice)
		if len(l.Factors) != 1 || !l.Factors[0].Confirmed || l.RecoveryCodesLeft != 10 {
			t.Fatalf("factors after confirmation: %+v", l)
		}
		if l := listFactors(t, srv, bob); len(l.Factors) != 0 {
			t.Fatalf("bob's factors: %+v", l)
		}
		wantError(t, "second enrolment", accountCall(t, srv, http.MethodPost, "/account/factors/totp", alice, map[string]string{"password": alicePassword}),
			http.StatusConflict, "conflict")

		// Recovery codes.
		wantError(t, "bob's recovery codes without a factor", accountCall(t, srv, http.MethodPost, "/account/recovery-codes", bob, map[string]string{"password": bobPassword}),
			http.StatusConflict, "conflict")
		wantError(t, "recovery codes, wrong password", accountCall(t, srv, http.MethodPost, "/account/recovery-codes", alice, map[string]string{"password": bobPassword}),
			http.StatusUnauthorized, "invalid_password")
		again := recoveryCodes(t, "regenerate", accountCall(t, srv, http.MethodPost, "/account/recovery-codes", alice, map[string]string{"password": alicePassword}))
		for _, c := range again {
			if slices.Contains(codes, c) {
				t.Fatalf("regenerated recovery codes %v share %s with the old ones", again, c)
			}
		}

		// Removal.
		wantError(t, "remove, wrong password", accountCall(t, srv, http.MethodDelete, "/account/factors/"+e.ID, alice, map[string]string{"password": bobPassword}),
			http.StatusUnauthorized, "invalid_password")
		wantStatus(t, "remove", accountCall(t, srv, http.MethodDelete, "/account/factors/"+e.ID, alice, map[string]string{"password": alicePassword}), http.StatusNoContent)
		if l := listFactors(t, srv, alice); len(l.Factors) != 0 || l.RecoveryCodesLeft != 0 {
			t.Fatalf("factors after removal: %+v", l)
		}
		wantError(t, "remove again", accountCall(t, srv, http.MethodDelete, "/account/factors/"+e.ID, alice, map[string]string{"password": alicePassword}),
			http.StatusNotFound, "not_found")
	})
}

// TestAccountPasswordLockout: a wrong password re-entered at the account
// API is a failed login: after lockout.max_failures of them the next
// attempt, even with the right password, is throttled (429, Retry-After)
// without being checked; the token endpoint shares the counter.
func TestAccountPasswordLockout(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_LOCKOUT_MAX_FAILURES=3"}, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", alicePassword)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		alice := "Bearer " + userToken(t, srv, app.ClientID, "alice", alicePassword)
		for range 3 {
			wantError(t, "wrong password", accountCall(t, srv, http.MethodPost, "/account/factors/totp", alice, map[string]string{"password": bobPassword}),
				http.StatusUnauthorized, "invalid_password")
		}
		r := accountCall(t, srv, http.MethodPost, "/account/factors/totp", alice, map[string]string{"password": alicePassword})
		wantError(t, "after max_failures", r, http.StatusTooManyRequests, "too_many_requests")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		if l := listFactors(t, srv, alice); len(l.Factors) != 0 {
			t.Fatalf("a throttled enrolment stored a factor: %+v", l)
		}
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "client_id": {app.ClientID}}
		if r := proctest.PostForm(t, srv.URL+"/oauth2/token", form.Encode()); r.Status == http.StatusOK {
			t.Fatal("the token endpoint ignored the failures counted at the account API")
		}
	})
}

// TestAccountDPoP: a DPoP-bound user token is accepted with the DPoP
// scheme and a proof of its key for the account API's URL, and refused as
// a Bearer token or with a proof replayed.
func TestAccountDPoP(t *testing.T) {
	srv := portcullis.Serve(t)
	srv.CreateUser(t, "alice", alicePassword)
	app := srv.CreateClient(t, "--name", "spa", "--public", "--grant-type", "password")
	key := dpopKey(t)
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "client_id": {app.ClientID}}
	tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", form.Encode(), "DPoP", tokenProof(t, key, srv)))
	if tok.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", tok.TokenType)
	}
	u := srv.URL + "/account/factors"
	proof, err := key.Proof(http.MethodGet, u, tok.AccessToken, "")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "DPoP", accountCall(t, srv, http.MethodGet, "/account/factors", "DPoP "+tok.AccessToken, nil, "DPoP", proof), http.StatusOK)
	wantError(t, "proof replayed", accountCall(t, srv, http.MethodGet, "/account/factors", "DPoP "+tok.AccessToken, nil, "DPoP", proof),
		http.StatusUnauthorized, "unauthorized")
	wantError(t, "bound token as Bearer", accountCall(t, srv, http.MethodGet, "/account/factors", "Bearer "+tok.AccessToken, nil),
		http.StatusUnauthorized, "unauthorized")
	wantError(t, "no proof", accountCall(t, srv, http.MethodGet, "/account/factors", "DPoP "+tok.AccessToken, nil),
		http.StatusUnauthorized, "unauthorized")
}

// adminCall sends a request to the admin API of srv with token and body
// as JSON (none when nil).
func adminCall(t *testing.T, srv *proctest.Server, token, method, path string, body any) proctest.Response {
	t.Helper()
	if body == nil {
		return proctest.Do(t, method, srv.AdminURL+path, "", nil, "Authorization", "Bearer "+token)
	}
	j, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return proctest.Do(t, method, srv.AdminURL+path, "application/json", bytes.NewReader(j), "Authorization", "Bearer "+token)
}

// userJSON is the admin API's and the CLI's representation of a user, as
// far as second factors go.
type userJSON struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	MFARequired bool   `json:"mfa_required"`
	MFAEnabled  bool   `json:"mfa_enabled"`
}

func decodeUser(t *testing.T, what string, r proctest.Response) userJSON {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", what, r.Status, r.Body)
	}
	for _, k := range []string{"mfa_required", "mfa_enabled"} {
		if _, ok := r.JSON(t)[k]; !ok {
			t.Fatalf("%s: %s missing from %s", what, k, r.Body)
		}
	}
	var u userJSON
	if err := json.Unmarshal(r.Body, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// enrolled gives the user whose token authz is a confirmed TOTP factor
// through the account API.
func enrolled(t *testing.T, srv *proctest.Server, authz, password string) {
	t.Helper()
	e := enrol(t, srv, authz, password)
	recoveryCodes(t, "confirm", accountCall(t, srv, http.MethodPost, "/account/factors/totp/"+e.ID+"/confirm", authz,
		map[string]string{"code": code(t, e.Secret, time.Now())}))
}

// TestAdminMFA: the admin API's second-factor administration on both
// backends: mfa_required set and cleared with PATCH, mfa_enabled once the
// user confirms a factor (in a user's representation and the list), the
// reset that deletes the user's factors and recovery codes, and clients'
// mfa_required (always shown; a PUT without it clears it).
func TestAdminMFA(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", alicePassword)
		srv.CreateUser(t, "bob", bobPassword)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		alice := "Bearer " + userToken(t, srv, app.ClientID, "alice", alicePassword)

		var list []userJSON
		r := adminCall(t, srv, admin, http.MethodGet, "/admin/users", nil)
		if err := json.Unmarshal(r.Body, &list); r.Status != http.StatusOK || err != nil || len(list) != 2 {
			t.Fatalf("list users: %d %s (%v)", r.Status, r.Body, err)
		}
		aliceID := list[0].ID
		if list[0].Username != "alice" || list[0].MFARequired || list[0].MFAEnabled {
			t.Fatalf("users before: %+v", list)
		}

		// mfa_required round trip.
		if u := decodeUser(t, "PATCH mfa_required", adminCall(t, srv, admin, http.MethodPatch, "/admin/users/"+aliceID, map[string]any{"mfa_required": true})); !u.MFARequired || u.MFAEnabled {
			t.Fatalf("after PATCH mfa_required=true: %+v", u)
		}
		if u := decodeUser(t, "GET", adminCall(t, srv, admin, http.MethodGet, "/admin/users/"+aliceID, nil)); !u.MFARequired {
			t.Fatalf("mfa_required not stored: %+v", u)
		}
		if u := decodeUser(t, "PATCH roles", adminCall(t, srv, admin, http.MethodPatch, "/admin/users/"+aliceID, map[string]any{"roles": []string{"x"}})); !u.MFARequired {
			t.Fatalf("a PATCH without mfa_required changed it: %+v", u)
		}
		if u := decodeUser(t, "PATCH mfa_required", adminCall(t, srv, admin, http.MethodPatch, "/admin/users/"+aliceID, map[string]any{"mfa_required": false})); u.MFARequired {
			t.Fatalf("after PATCH mfa_required=false: %+v", u)
		}

		// mfa_enabled.
		enrolled(t, srv, alice, alicePassword)
		if u := decodeUser(t, "GET", adminCall(t, srv, admin, http.MethodGet, "/admin/users/"+aliceID, nil)); !u.MFAEnabled {
			t.Fatalf("mfa_enabled false after enrolment: %+v", u)
		}
		r = adminCall(t, srv, admin, http.MethodGet, "/admin/users", nil)
		if err := json.Unmarshal(r.Body, &list); err != nil || len(list) != 2 || !list[0].MFAEnabled || list[1].MFAEnabled {
			t.Fatalf("list after alice's enrolment: %s (%v)", r.Body, err)
		}

		// Reset.
		if r := adminCall(t, srv, admin, http.MethodPost, "/admin/users/"+aliceID+"/mfa/reset", nil); r.Status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", r.Status, r.Body)
		}
		if l := listFactors(t, srv, alice); len(l.Factors) != 0 || l.RecoveryCodesLeft != 0 {
			t.Fatalf("factors after the reset: %+v", l)
		}
		if u := decodeUser(t, "GET", adminCall(t, srv, admin, http.MethodGet, "/admin/users/"+aliceID, nil)); u.MFAEnabled {
			t.Fatalf("mfa_enabled after the reset: %+v", u)
		}
		if r := adminCall(t, srv, admin, http.MethodPost, "/admin/users/00000000-0000-4000-8000-000000000000/mfa/reset", nil); r.Status != http.StatusNotFound {
			t.Fatalf("reset of no such user: %d %s", r.Status, r.Body)
		}

		// Clients.
		r = adminCall(t, srv, admin, http.MethodPost, "/admin/clients", map[string]any{"client_name": "mfa", "grant_types": []string{"password"}, "mfa_required": true})
		c := r.JSON(t)
		if r.Status != http.StatusCreated || c["mfa_required"] != true {
			t.Fatalf("create client with mfa_required: %d %s", r.Status, r.Body)
		}
		id, _ := c["client_id"].(string)
		r = adminCall(t, srv, admin, http.MethodPut, "/admin/clients/"+id, map[string]any{"client_name": "mfa", "grant_types": []string{"password"}})
		if r.Status != http.StatusOK || r.JSON(t)["mfa_required"] != false {
			t.Fatalf("PUT without mfa_required: %d %s", r.Status, r.Body)
		}
		r = adminCall(t, srv, admin, http.MethodGet, "/admin/clients/"+app.ClientID, nil)
		if v, ok := r.JSON(t)["mfa_required"]; !ok || v != false {
			t.Fatalf("client representation without mfa_required false: %s", r.Body)
		}
	})
}

// TestCLIMFA: users update --mfa-required, users get/list showing it and
// whether a factor is enrolled, users reset-mfa, and clients
// create|update --mfa-required with its column in clients list.
func TestCLIMFA(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", alicePassword)
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		alice := "Bearer " + userToken(t, srv, app.ClientID, "alice", alicePassword)
		getUser := func(t *testing.T) userJSON {
			t.Helper()
			var u userJSON
			if out := srv.CLI(t, "", "users", "get", "alice", "--output", "json"); json.Unmarshal(out, &u) != nil || u.Username != "alice" {
				t.Fatalf("users get: %s", out)
			}
			return u
		}

		var u userJSON
		if out := srv.CLI(t, "", "users", "update", "alice", "--mfa-required=true", "--output", "json"); json.Unmarshal(out, &u) != nil || !u.MFARequired {
			t.Fatalf("users update --mfa-required=true: %s", out)
		}
		if u := getUser(t); !u.MFARequired || u.MFAEnabled {
			t.Fatalf("users get after --mfa-required=true: %+v", u)
		}
		if _, stderr, err := srv.TryCLI("", "users", "update", "alice"); err == nil {
			t.Fatal("users update without a flag succeeded")
		} else if !strings.Contains(string(stderr), "mfa-required") {
			t.Fatalf("users update without a flag: %s", stderr)
		}
		if out := srv.CLI(t, "", "users", "update", "alice", "--mfa-required=false", "--output", "json"); json.Unmarshal(out, &u) != nil || u.MFARequired {
			t.Fatalf("users update --mfa-required=false: %s", out)
		}

		enrolled(t, srv, alice, alicePassword)
		if u := getUser(t); !u.MFAEnabled {
			t.Fatalf("users get after enrolment: %+v", u)
		}
		if out := string(srv.CLI(t, "", "users", "list")); !strings.Contains(out, "MFA_ENABLED") || !strings.Contains(out, "true") {
			t.Fatalf("users list:\n%s", out)
		}
		srv.CLI(t, "", "users", "reset-mfa", "alice")
		if u := getUser(t); u.MFAEnabled {
			t.Fatalf("users get after reset-mfa: %+v", u)
		}
		if l := listFactors(t, srv, alice); len(l.Factors) != 0 || l.RecoveryCodesLeft != 0 {
			t.Fatalf("factors after reset-mfa: %+v", l)
		}
		if _, _, err := srv.TryCLI("", "users", "reset-mfa", "nobody"); err == nil {
			t.Fatal("reset-mfa of no such user succeeded")
		}

		var c struct {
			ClientID    string   `json:"client_id"`
			GrantTypes  []string `json:"grant_types"`
			MFARequired *bool    `json:"mfa_required"`
		}
		out := srv.CLI(t, "", "clients", "create", "--name", "fp", "--public", "--grant-type", "authorization_code", "--mfa-required", "--output", "json")
		if json.Unmarshal(out, &c) != nil || c.MFARequired == nil || !*c.MFARequired || !slices.Equal(c.GrantTypes, []string{"authorization_code"}) {
			t.Fatalf("clients create --mfa-required: %s", out)
		}
		if out := string(srv.CLI(t, "", "clients", "list")); !strings.Contains(strings.SplitN(out, "\n", 2)[0], "MFA") {
			t.Fatalf("clients list has no MFA column:\n%s", out)
		}
		out = srv.CLI(t, "", "clients", "update", c.ClientID, "--mfa-required=false", "--output", "json")
		if json.Unmarshal(out, &c) != nil || c.MFARequired == nil || *c.MFARequired {
			t.Fatalf("clients update --mfa-required=false: %s", out)
		}
		if help := string(srv.CLI(t, "", "clients", "create", "--help")); !strings.Contains(help, "authorization_code") || !strings.Contains(help, "--mfa-required") {
			t.Fatalf("clients create --help:\n%s", help)
		}
	})
}

// TestAccountCORS: browser apps on the origin registered on any client may
// call the account API (preflights for GET, POST and DELETE with the
// Authorization header, answers readable); other origins get no
// Access-Control-Allow-Origin, and their requests are refused before the
// token or password is looked at.
func TestAccountCORS(t *testing.T) {
	srv := portcullis.Serve(t)
	const spaO, evilO = "https://spa.example.test", "https://evil.example.test"
	srv.CreateUser(t, "alice", alicePassword)
	app := srv.CreateClient(t, "--name", "spa", "--public", "--grant-type", "password", "--cors-origin", spaO)
	alice := "Bearer " + userToken(t, srv, app.ClientID, "alice", alicePassword)

	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/account/factors"},
		{http.MethodPost, "/account/factors/totp"},
		{http.MethodPost, "/account/factors/totp/x/confirm"},
		{http.MethodDelete, "/account/factors/x"},
		{http.MethodPost, "/account/recovery-codes"},
	} {
		r := proctest.Do(t, http.MethodOptions, srv.URL+tc.path, "", nil, "Origin", spaO,
			"Access-Control-Request-Method", tc.method, "Access-Control-Request-Headers", "authorization, content-type")
		if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != spaO ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), tc.method) ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight %s %s: %d %v", tc.method, tc.path, r.Status, r.Header)
		}
		r = proctest.Do(t, http.MethodOptions, srv.URL+tc.path, "", nil, "Origin", evilO, "Access-Control-Request-Method", tc.method)
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight %s %s from an unlisted origin allowed", tc.method, tc.path)
		}
	}
	r := proctest.Do(t, http.MethodGet, srv.URL+"/account/factors", "", nil, "Origin", spaO, "Authorization", alice)
	if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != spaO {
		t.Fatalf("GET from the client's origin: %d, ACAO %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
	r = proctest.Do(t, http.MethodPost, srv.URL+"/account/factors/totp", "application/json", strings.NewReader(`{"password":"wrong"}`),
		"Origin", evilO, "Authorization", alice)
	if r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("POST from an unlisted origin: %d, ACAO %q: %s", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Body)
	}
}

// TestAccountDeadTokens: a revoked token is refused at once, and a token
// from its exp on (no leeway), as at the admin API.
func TestAccountDeadTokens(t *testing.T) {
	srv := portcullis.Serve(t, "PORTCULLIS_ACCESS_TOKEN_TTL=2s")
	srv.CreateUser(t, "alice", alicePassword)
	app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")

	revoked := userToken(t, srv, app.ClientID, "alice", alicePassword)
	listFactors(t, srv, "Bearer "+revoked)
	form := url.Values{"token": {revoked}, "client_id": {app.ClientID}}
	if r := proctest.PostForm(t, srv.URL+"/oauth2/revoke", form.Encode()); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	wantError(t, "revoked token", accountCall(t, srv, http.MethodGet, "/account/factors", "Bearer "+revoked, nil), http.StatusUnauthorized, "unauthorized")

	tok := userToken(t, srv, app.ClientID, "alice", alicePassword)
	_, claims := proctest.DecodeJWT(t, tok)
	exp, _ := claims["exp"].(float64)
	time.Sleep(time.Until(time.Unix(int64(exp), 0)) + 100*time.Millisecond)
	r := accountCall(t, srv, http.MethodGet, "/account/factors", "Bearer "+tok, nil)
	wantError(t, "expired token", r, http.StatusUnauthorized, "unauthorized")
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired token: WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
}
