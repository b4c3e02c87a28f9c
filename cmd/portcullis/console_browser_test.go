package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// consoleAdmin and consolePassword are the administrator the console
// test logs in as.
const (
	consoleAdmin    = "root-admin"
	consolePassword = "console test password 7"
)

// consoleRun is the server and the browser the subtests of
// TestBrowserAdminConsole share, and what they learn along the way.
type consoleRun struct {
	browser context.Context
	srv     *proctest.Server
	shots   string // the screenshots' directory
	taken   int    // screenshots taken so far: their names' order
	// admin is an admin API token of a client, for checks made outside
	// the browser; app a public client with the password grant.
	admin string
	app   proctest.Client
	// rootID is the user ID of consoleAdmin.
	rootID string
	// clientID is the client the clients subtests create and then edit,
	// rotate and delete; secret its current secret.
	clientID, secret string
}

// TestBrowserAdminConsole drives the admin console in headless Chromium
// against the real binary, one task per subtest in one browser: logins
// (refused for a user without role admin; password then TOTP code, a
// wrong code refused), every users task (create, disable/enable, search,
// unlock, roles, requiring a second factor, password reset, second-factor
// reset, delete, a concurrent change reported), every clients task
// (create with the secret shown once, edit, rotate the secret, delete),
// key rotation with pre-publication and at once, the audit trail
// (filters, paging) and logging out. The effect of each task is checked
// outside the browser (admin API, token endpoint, JWKS), and a screenshot
// follows each main step in $PORTCULLIS_TEST_ARTIFACTS (default a
// temporary directory).
func TestBrowserAdminConsole(t *testing.T) {
	browser := startChromiumFor(t, 4*time.Minute)
	c := &consoleRun{browser: browser, shots: artifactsDir(t)}
	// The first action on the browser's own context starts it there; one
	// on a derived context (step's timeouts) would tie the browser to it.
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	// Failed password grants lock an account below; the default limit of
	// password requests per IP would hold the test's own back.
	c.srv = portcullis.Serve(t, "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0")
	c.srv.CLI(t, consolePassword+"\n", "users", "create", "--username", consoleAdmin, "--password-stdin", "--role", "admin")
	c.srv.CLI(t, "plain user password 8\n", "users", "create", "--username", "mallory", "--password-stdin")
	c.admin = adminToken(t, c.srv)
	c.app = c.srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")

	t.Run("NonAdminRefused", c.nonAdminRefused)
	t.Run("LoginWithTOTP", c.loginWithTOTP)
	t.Run("LoginEnrolsTOTP", c.loginEnrolsTOTP)

	c.login(t, consoleAdmin, consolePassword)
	c.step(t, "wait for the users page", chromedp.WaitVisible(chromedp.CSS(`#users-table tr[data-username="`+consoleAdmin+`"]`)))
	c.shot(t, "users-page")
	c.rootID = c.userID(t, consoleAdmin)
	if got, want := visible(t, browser, "#nav-audit"), auditRouteExists(t, c.srv); got != want {
		t.Errorf("audit tab visible = %v; want %v (GET /admin/audit exists: %v)", got, want, want)
	}

	t.Run("CreateDisableEnableUser", c.createDisableEnableUser)
	t.Run("UnlockUser", c.unlockUser)
	t.Run("ResetPassword", c.resetPassword)
	t.Run("RolesAndSecondFactorRequired", c.rolesAndMFARequired)
	t.Run("ResetSecondFactor", c.resetSecondFactor)
	t.Run("DeleteUser", c.deleteUser)
	t.Run("UsersFiltersAndLoadMore", c.usersList)
	t.Run("CreateClientSecretShownOnce", c.createClient)
	t.Run("EditClient", c.editClient)
	t.Run("RotateClientSecret", c.rotateClientSecret)
	t.Run("DeleteClient", c.deleteClient)
	t.Run("ClientsLoadMore", c.clientsList)
	t.Run("RotateKeyWithPrepublication", c.rotateKeyPrepublished)
	t.Run("RotateKeyNow", c.rotateKeyNow)
	t.Run("Audit", c.auditTrail)
	t.Run("Logout", c.logout)
}

func (c *consoleRun) nonAdminRefused(t *testing.T) {
	c.login(t, "mallory", "plain user password 8")
	c.waitStatus(t, "wait for the refusal", "does not hold the role admin")
	c.shot(t, "non-admin-refused")
	if visible(t, c.browser, "#app") {
		t.Fatal("the console opened for a user without role admin")
	}
	if !visible(t, c.browser, "#login-form") || c.statusClass(t) != "error" {
		t.Errorf("after the refusal: login form visible %v, status class %q; want the form and an error",
			visible(t, c.browser, "#login-form"), c.statusClass(t))
	}
	// The page revoked the refresh token it was issued (RFC 7009), as
	// Log out does: the refused login leaves no live grant behind.
	var u struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(c.srv.CLI(t, "", "users", "get", "mallory", "--output", "json"), &u); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n := activeRefreshTokens(t, c.srv, u.ID); n != 0; n = activeRefreshTokens(t, c.srv, u.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("after the refusal mallory has %d live refresh token(s), want the console's revoked", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// activeRefreshTokens counts the live refresh tokens of the user with ID
// subject in the server's SQLite database.
func activeRefreshTokens(t *testing.T, srv *proctest.Server, subject string) int64 {
	t.Helper()
	var path string
	for _, kv := range srv.Env() {
		if v, ok := strings.CutPrefix(kv, "PORTCULLIS_DSN=sqlite://"); ok {
			path = v
		}
	}
	if path == "" {
		t.Fatal("the console test's server is not on SQLite")
	}
	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	var n int64
	if err := db.Table("oauth2_refresh_tokens").Where("subject = ? AND active", subject).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// loginWithTOTP: an administrator with a confirmed TOTP factor logs in:
// the page asks for the code after the password, refuses a wrong one
// (saying so, and letting them try again) and logs in with the right
// one. The audit trail records the wrong code and the login.
func (c *consoleRun) loginWithTOTP(t *testing.T) {
	const name, password = "totp-admin", "totp admin password 5"
	id := c.createUser(t, name, password, "admin")
	authz := "Bearer " + userToken(t, c.srv, c.app.ClientID, name, password)
	e := enrol(t, c.srv, authz, password)
	confirmed := time.Now()
	recoveryCodes(t, "confirm", accountCall(t, c.srv, http.MethodPost, "/account/factors/totp/"+e.ID+"/confirm", authz,
		map[string]string{"code": code(t, e.Secret, confirmed)}))
	if u := c.user(t, id); !u.MFAEnabled {
		t.Fatalf("after enrolment: %+v, want mfa_enabled", u)
	}

	logins := func() (n int) {
		for _, ev := range c.auditEvents(t, "action=login&target=user:"+id) {
			if ev.Outcome == "success" {
				n++
			}
		}
		return n
	}
	before := logins()

	c.login(t, name, password)
	c.step(t, "wait for the code prompt", chromedp.WaitVisible(chromedp.CSS("#otp-form")))
	c.shot(t, "totp-code-asked")
	if visible(t, c.browser, "#enroll") {
		t.Error("the page offers an enrolment to a user who has a factor")
	}

	// A code valid at no step near now.
	valid := map[string]bool{}
	for d := -2; d <= 3; d++ {
		valid[code(t, e.Secret, confirmed.Add(time.Duration(d)*30*time.Second))] = true
	}
	wrong := "000000"
	for i := 1; valid[wrong]; i++ {
		wrong = fmt.Sprintf("%06d", i)
	}
	status := c.act(t, "send a wrong code", "",
		chromedp.SendKeys(chromedp.CSS("#login-otp"), wrong),
		chromedp.Click(chromedp.CSS("#otp-submit")))
	c.shot(t, "totp-wrong-code")
	if c.statusClass(t) != "error" || !strings.Contains(strings.ToLower(status), "code") {
		t.Errorf("after a wrong code the status line says %q (class %q); want an error about the code", status, c.statusClass(t))
	}
	if visible(t, c.browser, "#app") {
		t.Fatal("a wrong code logged in")
	}
	if !visible(t, c.browser, "#otp-form") {
		t.Fatal("after a wrong code the page does not let the user try another")
	}

	// The next step's code: the confirmation used the current one, and a
	// code is accepted once (Skew allows the next step).
	c.act(t, "send the right code", "Logged in as "+name,
		chromedp.SendKeys(chromedp.CSS("#login-otp"), code(t, e.Secret, time.Now().Add(30*time.Second))),
		chromedp.Click(chromedp.CSS("#otp-submit")))
	c.step(t, "wait for the users page", chromedp.WaitVisible(chromedp.CSS(`#users-table tr[data-username="`+name+`"]`)))
	c.shot(t, "totp-logged-in")
	if got := c.text(t, "#whoami"); got != name {
		t.Errorf("whoami shows %q, want %s", got, name)
	}

	outcomes := func(action string) []string {
		var out []string
		for _, ev := range c.auditEvents(t, "action="+action+"&target=user:"+id) {
			out = append(out, ev.Outcome)
		}
		return out
	}
	if got := outcomes("login.second_factor"); !slices.Equal(got, []string{"failure"}) {
		t.Errorf("audit login.second_factor of %s: %v, want one failure", name, got)
	}
	if n := logins(); n != before+1 {
		t.Errorf("audit: %d successful logins of %s since the console's login began, want 1", n-before, name)
	}
	c.step(t, "log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
}

// loginEnrolsTOTP: an administrator who must have a second factor and has
// none enrols one while logging in: the page shows the new secret, keeps
// showing it after a wrong code, logs in with a right one and shows the
// recovery codes once.
func (c *consoleRun) loginEnrolsTOTP(t *testing.T) {
	const name, password = "new-admin", "new admin password 6"
	id := c.createUser(t, name, password, "admin")
	if r := c.call(t, http.MethodPatch, "/admin/users/"+id, map[string]any{"mfa_required": true}); r.Status != http.StatusOK {
		t.Fatalf("PATCH mfa_required: %d %s", r.Status, r.Body)
	}
	c.login(t, name, password)
	c.step(t, "wait for the enrolment", chromedp.WaitVisible(chromedp.CSS("#enroll")))
	secret := c.text(t, "#enroll-secret")
	c.shot(t, "totp-enrolment")
	if len(secret) < 16 {
		t.Fatalf("enrolment secret %q", secret)
	}
	valid := map[string]bool{}
	for d := -2; d <= 2; d++ {
		valid[code(t, secret, time.Now().Add(time.Duration(d)*30*time.Second))] = true
	}
	wrong := "000000"
	for i := 1; valid[wrong]; i++ {
		wrong = fmt.Sprintf("%06d", i)
	}
	c.act(t, "send a wrong code", "", chromedp.SendKeys(chromedp.CSS("#login-otp"), wrong), chromedp.Click(chromedp.CSS("#otp-submit")))
	if c.statusClass(t) != "error" || !visible(t, c.browser, "#enroll") || c.text(t, "#enroll-secret") != secret {
		t.Errorf("after a wrong code: status %q (class %q), secret shown %q; want an error and the secret still shown",
			c.text(t, "#status"), c.statusClass(t), c.text(t, "#enroll-secret"))
	}
	c.act(t, "send the right code", "Logged in as "+name,
		chromedp.SendKeys(chromedp.CSS("#login-otp"), code(t, secret, time.Now())), chromedp.Click(chromedp.CSS("#otp-submit")))
	c.step(t, "wait for the recovery codes", chromedp.WaitVisible(chromedp.CSS("#recovery-box")), idle())
	codes := strings.Fields(c.text(t, "#recovery-codes"))
	c.shot(t, "totp-enrolled-recovery-codes")
	if len(codes) != 10 {
		t.Errorf("recovery codes shown: %q, want 10", codes)
	}
	if u := c.user(t, id); !u.MFAEnabled {
		t.Errorf("after the enrolment: %+v, want mfa_enabled", u)
	}
	c.step(t, "dismiss the codes", chromedp.Click(chromedp.CSS("#recovery-dismiss")), chromedp.WaitNotVisible(chromedp.CSS("#recovery-box")))
	if len(codes) > 0 && c.pageHolds(t, codes[0]) || c.pageHolds(t, secret) {
		t.Error("the page still holds a recovery code or the secret")
	}
	c.step(t, "log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
}

func (c *consoleRun) createDisableEnableUser(t *testing.T) {
	row := `#users-table tr[data-username="carol"]`
	c.act(t, "create carol", "User carol created.",
		chromedp.SendKeys(chromedp.CSS("#new-username"), "carol"),
		chromedp.SendKeys(chromedp.CSS("#new-password"), "a long password for her"),
		chromedp.SendKeys(chromedp.CSS("#new-roles"), "user, billing"),
		chromedp.Click(chromedp.CSS("#create-user")))
	c.step(t, "wait for carol's row", chromedp.WaitVisible(chromedp.CSS(row)))
	if u := consoleCLIUser(t, c.srv, "carol"); u.Disabled || !sameSet(u.Roles, "user", "billing") {
		t.Fatalf("after creation: %+v, want enabled with roles user and billing", u)
	}
	c.act(t, "disable carol", "User carol disabled.", chromedp.Click(chromedp.CSS(row+` button[data-action="disable"]`)))
	c.step(t, "wait for the badge", chromedp.WaitVisible(chromedp.CSS(row+` .state .badge.bad`)))
	c.shot(t, "user-disabled")
	if u := consoleCLIUser(t, c.srv, "carol"); !u.Disabled {
		t.Fatalf("after Disable: %+v, want disabled", u)
	}
	c.act(t, "enable carol", "User carol enabled.", chromedp.Click(chromedp.CSS(row+` button[data-action="enable"]`)))
	c.step(t, "wait for the badge", chromedp.WaitVisible(chromedp.CSS(row+` .state .badge.good`)))
	if u := consoleCLIUser(t, c.srv, "carol"); u.Disabled {
		t.Fatalf("after Enable: %+v, want enabled", u)
	}
	c.step(t, "search", chromedp.SendKeys(chromedp.CSS("#user-search"), "car"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#users-table tbody tr").length === 1`, chromedp.WithPollingTimeout(10*time.Second)))
	c.shot(t, "user-search")
	if got := c.text(t, "#users-table tbody tr td"); got != "carol" {
		t.Errorf("search 'car' shows %q, want carol", got)
	}
	c.step(t, "clear the search", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("user-search"); s.value = ""; s.dispatchEvent(new Event("input")); })()`),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#users-table tbody tr").length > 1`, chromedp.WithPollingTimeout(10*time.Second)))
}

// unlockUser: a user locked by failed password grants is shown locked
// and unlocked with the row's button.
func (c *consoleRun) unlockUser(t *testing.T) {
	const name, password = "dave", "correct horse battery 1"
	id := c.createUser(t, name, password)
	for range 5 {
		wantOAuthError(t, passwordGrant(t, c.srv, c.app.ClientID, name, "not the right password", ""), http.StatusBadRequest, "invalid_grant")
	}
	if u := c.user(t, id); !u.Locked {
		t.Fatalf("after 5 wrong passwords: %+v, want locked", u)
	}
	row := `#users-table tr[data-username="dave"]`
	c.step(t, "reload users", chromedp.Click(chromedp.CSS("#users-reload")), idle(), chromedp.WaitVisible(chromedp.CSS(row+` button[data-action="unlock"]`)))
	c.shot(t, "user-locked")
	c.act(t, "unlock dave", "User dave unlocked.", chromedp.Click(chromedp.CSS(row+` button[data-action="unlock"]`)))
	c.step(t, "wait for the row without Unlock", chromedp.WaitNotPresent(chromedp.CSS(row+` button[data-action="unlock"]`)))
	c.shot(t, "user-unlocked")
	if u := c.user(t, id); u.Locked {
		t.Fatalf("after Unlock: %+v, want not locked", u)
	}
	if r := passwordGrant(t, c.srv, c.app.ClientID, name, password, ""); r.Status != http.StatusOK {
		t.Fatalf("password grant after Unlock: %d %s", r.Status, r.Body)
	}
}

// resetPassword: the user panel's password reset; the new password works
// at the token endpoint and the old one no longer does.
func (c *consoleRun) resetPassword(t *testing.T) {
	const name, old, next = "paula", "first secret phrase 1", "second secret phrase 2"
	c.createUser(t, name, old)
	c.openUser(t, name)
	c.act(t, "reset the password", "Password of paula reset.",
		chromedp.SendKeys(chromedp.CSS("#user-password"), next),
		chromedp.Click(chromedp.CSS("#user-set-password")))
	c.shot(t, "user-password-reset")
	if v := c.value(t, "#user-password"); v != "" {
		t.Errorf("the password field still holds %q", v)
	}
	wantOAuthError(t, passwordGrant(t, c.srv, c.app.ClientID, name, old, ""), http.StatusBadRequest, "invalid_grant")
	if r := passwordGrant(t, c.srv, c.app.ClientID, name, next, ""); r.Status != http.StatusOK {
		t.Fatalf("password grant with the new password: %d %s", r.Status, r.Body)
	}
	c.closeUser(t)
}

// rolesAndMFARequired: the user panel edits roles and the second-factor
// requirement; a change made meanwhile through the API is reported and
// not overwritten, and the page's own change from the users table (Disable)
// is not taken for one.
func (c *consoleRun) rolesAndMFARequired(t *testing.T) {
	const name = "erin"
	id := c.createUser(t, name, "she has a long password", "user")
	c.openUser(t, name)
	c.act(t, "save roles and the requirement", "User erin saved.",
		setValue("#user-roles", "support, auditor"),
		chromedp.Click(chromedp.CSS("#user-mfa-required")),
		chromedp.Click(chromedp.CSS("#user-save")))
	c.shot(t, "user-roles-saved")
	if u := c.user(t, id); !sameSet(u.Roles, "support", "auditor") || !u.MFARequired {
		t.Fatalf("after Save: %+v, want roles support and auditor, mfa_required", u)
	}
	if !c.poll(t, `(document.querySelector('#users-table tr[data-username="erin"] .state') || {}).textContent?.includes("2FA required")`) {
		t.Errorf("erin's state shows %q, want 2FA required", c.text(t, `#users-table tr[data-username="erin"] .state`))
	}

	// Someone else changes erin while the panel is open.
	if r := c.call(t, http.MethodPatch, "/admin/users/"+id, map[string]any{"roles": []string{"ops"}}); r.Status != http.StatusOK {
		t.Fatalf("PATCH erin: %d %s", r.Status, r.Body)
	}
	status := c.act(t, "save over the change", "changed by someone else",
		setValue("#user-roles", "support"),
		chromedp.Click(chromedp.CSS("#user-save")))
	c.shot(t, "user-concurrent-change")
	if c.statusClass(t) != "error" {
		t.Errorf("conflict reported as %q with class %q, want an error", status, c.statusClass(t))
	}
	if u := c.user(t, id); !sameSet(u.Roles, "ops") {
		t.Fatalf("after the refused Save: %+v, want the concurrent change (roles ops) kept", u)
	}
	if !c.poll(t, `document.getElementById("user-roles").value === "ops"`) {
		t.Errorf("after the conflict the panel shows roles %q, want the current ops", c.value(t, "#user-roles"))
	}
	if !c.poll(t, `document.querySelector('#users-table tr[data-username="erin"] td:nth-child(2)').textContent === "ops"`) {
		t.Errorf("after the conflict erin's row shows roles %q, want the current ops",
			c.text(t, `#users-table tr[data-username="erin"] td:nth-child(2)`))
	}

	// The page's own change of the open user, from its row, is no
	// conflict for the panel.
	c.act(t, "disable erin from her row", "User erin disabled.",
		chromedp.Click(chromedp.CSS(`#users-table tr[data-username="erin"] button[data-action="disable"]`)))
	status = c.act(t, "save after disabling", "",
		setValue("#user-roles", "ops, support"),
		chromedp.Click(chromedp.CSS("#user-save")))
	if !strings.Contains(status, "User erin saved.") {
		t.Errorf("Save after the page's own Disable: status %q, want saved", status)
	}
	if u := c.user(t, id); !u.Disabled || !sameSet(u.Roles, "ops", "support") {
		t.Errorf("after Disable and Save: %+v, want disabled with roles ops and support", u)
	}
	// A Save sends what changed only: the audit trail records no change
	// that was not made.
	if n := len(c.auditEvents(t, "action=user.mfa_required&target=user:"+id)); n != 1 {
		t.Errorf("%d user.mfa_required events for erin, want 1: the requirement was set once, then left as it was", n)
	}
	c.closeUser(t)
}

// resetSecondFactor: the panel's second-factor reset deletes the factor
// of a user who enrolled one.
func (c *consoleRun) resetSecondFactor(t *testing.T) {
	const name, password = "frank", "long random phrase 99"
	id := c.createUser(t, name, password)
	authz := "Bearer " + userToken(t, c.srv, c.app.ClientID, name, password)
	e := enrol(t, c.srv, authz, password)
	recoveryCodes(t, "confirm", accountCall(t, c.srv, http.MethodPost, "/account/factors/totp/"+e.ID+"/confirm", authz,
		map[string]string{"code": code(t, e.Secret, time.Now())}))
	if u := c.user(t, id); !u.MFAEnabled {
		t.Fatalf("after enrolment: %+v, want mfa_enabled", u)
	}
	c.step(t, "reload users", chromedp.Click(chromedp.CSS("#users-reload")), idle(),
		chromedp.WaitVisible(chromedp.CSS(`#users-table tr[data-username="frank"]`)))
	if s := c.text(t, `#users-table tr[data-username="frank"] .state`); !strings.Contains(s, "2FA") {
		t.Errorf("frank's state shows %q, want 2FA", s)
	}
	c.openUser(t, name)
	c.act(t, "reset the second factor", "Second factor of frank reset.", chromedp.Click(chromedp.CSS("#user-reset-mfa")))
	c.shot(t, "user-second-factor-reset")
	if u := c.user(t, id); u.MFAEnabled {
		t.Fatalf("after the reset: %+v, want no second factor", u)
	}
	if !c.poll(t, `!document.querySelector('#users-table tr[data-username="frank"] .state').textContent.includes("2FA")`) {
		t.Errorf("frank's state still shows %q", c.text(t, `#users-table tr[data-username="frank"] .state`))
	}
	c.closeUser(t)
}

func (c *consoleRun) deleteUser(t *testing.T) {
	id := c.createUser(t, "gina", "another long phrase 4242")
	c.openUser(t, "gina")
	// Someone else changes gina while her panel is open: the page's
	// Delete (sent with If-Match) is refused and she stays.
	if r := c.call(t, http.MethodPatch, "/admin/users/"+id, map[string]any{"roles": []string{"ops"}}); r.Status != http.StatusOK {
		t.Fatalf("PATCH gina: %d %s", r.Status, r.Body)
	}
	c.step(t, "first click on a stale panel", chromedp.Click(chromedp.CSS("#user-delete")))
	c.act(t, "confirm on a stale panel", "changed by someone else", chromedp.Click(chromedp.CSS("#user-delete.confirm")))
	if u := c.call(t, http.MethodGet, "/admin/users/"+id, nil); u.Status != http.StatusOK {
		t.Fatalf("after Delete of a user changed since the panel opened: GET %d, want the user kept (412)", u.Status)
	}
	if !c.poll(t, `document.getElementById("user-roles").value === "ops"`) {
		t.Errorf("after the refused Delete the panel shows roles %q, want the current ops", c.value(t, "#user-roles"))
	}
	c.step(t, "first click", chromedp.Click(chromedp.CSS("#user-delete")))
	if u := c.call(t, http.MethodGet, "/admin/users/"+id, nil); u.Status != http.StatusOK {
		t.Fatalf("after one click on Delete: GET %d, want the user kept until confirmed", u.Status)
	}
	c.act(t, "confirm", "User gina deleted.", chromedp.Click(chromedp.CSS("#user-delete.confirm")))
	c.step(t, "wait for the row to go", chromedp.WaitNotPresent(chromedp.CSS(`#users-table tr[data-username="gina"]`)))
	c.shot(t, "user-deleted")
	if r := c.call(t, http.MethodGet, "/admin/users/"+id, nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET the deleted user: %d %s, want 404", r.Status, r.Body)
	}
	if visible(t, c.browser, "#user-panel") {
		t.Error("the panel of the deleted user is still open")
	}
}

// usersList: the users page searches and filters on the server
// (username_prefix, role, disabled, locked) and pages with Load more
// (Link rel="next"), here 20 users a page.
func (c *consoleRun) usersList(t *testing.T) {
	for i := 1; i <= 25; i++ {
		var roles []string
		if i <= 5 {
			roles = []string{"night"}
		}
		c.createUser(t, fmt.Sprintf("bulk-%02d", i), "a bulk password 1234", roles...)
	}
	c.step(t, "20 a page", chromedp.Click(chromedp.CSS("#nav-users")), idle(), setValue("#users-limit", "20"), idle())
	all := c.listAll(t, "/admin/users", "username")
	if len(all) <= 20 {
		t.Fatalf("only %d users", len(all))
	}
	if got := c.rows(t, "users-table", "username"); !slices.Equal(got, all[:20]) || !visible(t, c.browser, "#users-more") {
		t.Fatalf("first page of 20: %v (Load more shown: %v), want %v", got, visible(t, c.browser, "#users-more"), all[:20])
	}
	c.step(t, "load more until the end", chromedp.Click(chromedp.CSS("#users-more")), idle())
	for visible(t, c.browser, "#users-more") {
		c.step(t, "load more", chromedp.Click(chromedp.CSS("#users-more")), idle())
	}
	if got := c.rows(t, "users-table", "username"); !slices.Equal(got, all) {
		t.Fatalf("after Load more to the end: %v, want %v", got, all)
	}

	// The search is the server's: a user far beyond the first page is
	// found from it.
	c.step(t, "search totp", setValue("#user-search", "TOTP"), idle())
	if got := c.rows(t, "users-table", "username"); !slices.Equal(got, []string{"totp-admin"}) {
		t.Errorf("search TOTP: %v, want totp-admin", got)
	}
	c.step(t, "search bulk-", setValue("#user-search", "bulk-"), idle())
	bulk := c.listAll(t, "/admin/users?username_prefix=bulk-", "username")
	if got := c.rows(t, "users-table", "username"); !slices.Equal(got, bulk[:20]) || !visible(t, c.browser, "#users-more") {
		t.Fatalf("search bulk-, first page: %v, want %v and Load more", got, bulk[:20])
	}
	c.shot(t, "users-search-first-page")
	c.step(t, "load more", chromedp.Click(chromedp.CSS("#users-more")), idle())
	c.shot(t, "users-load-more")
	if got := c.rows(t, "users-table", "username"); !slices.Equal(got, bulk) || len(bulk) != 25 || visible(t, c.browser, "#users-more") {
		t.Fatalf("search bulk- after Load more: %v (Load more shown: %v), want the 25 %v", got, visible(t, c.browser, "#users-more"), bulk)
	}

	for _, f := range []struct {
		what    string
		actions []chromedp.Action[chromedp.Void]
		query   string
	}{
		{"role night", []chromedp.Action[chromedp.Void]{setValue("#user-search", ""), setValue("#user-role", "night")}, "role=night"},
		{"disabled", []chromedp.Action[chromedp.Void]{setValue("#user-role", ""), setValue("#user-disabled", "true")}, "disabled=true"},
		{"enabled and not locked", []chromedp.Action[chromedp.Void]{setValue("#user-disabled", "false"), setValue("#user-locked", "false")}, "disabled=false&locked=false"},
	} {
		c.step(t, "filter "+f.what, append(f.actions, idle())...)
		for visible(t, c.browser, "#users-more") {
			c.step(t, "load more", chromedp.Click(chromedp.CSS("#users-more")), idle())
		}
		want := c.listAll(t, "/admin/users?"+f.query, "username")
		if got := c.rows(t, "users-table", "username"); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("filter %s: the page lists %v, the API %v", f.what, got, want)
		}
	}
	c.shot(t, "users-filtered")
	c.step(t, "no filters", setValue("#user-disabled", ""), setValue("#user-locked", ""), setValue("#users-limit", "100"), idle())
}

// clientsList: the clients page searches by name on the server and pages
// with Load more, here 20 clients a page.
func (c *consoleRun) clientsList(t *testing.T) {
	for i := 1; i <= 25; i++ {
		r := c.call(t, http.MethodPost, "/admin/clients", map[string]any{
			"client_name": fmt.Sprintf("batch-%02d", i), "grant_types": []string{"client_credentials"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("create client batch-%02d: %d %s", i, r.Status, r.Body)
		}
	}
	c.step(t, "20 a page", chromedp.Click(chromedp.CSS("#nav-clients")), idle(), setValue("#clients-limit", "20"), idle())
	all := c.listAll(t, "/admin/clients", "client_id")
	if got := c.rows(t, "clients-table", "clientId"); !slices.Equal(got, all[:20]) || !visible(t, c.browser, "#clients-more") {
		t.Fatalf("first page of 20: %v, want %v and Load more", got, all[:20])
	}
	c.shot(t, "clients-first-page")
	for visible(t, c.browser, "#clients-more") {
		c.step(t, "load more", chromedp.Click(chromedp.CSS("#clients-more")), idle())
	}
	c.shot(t, "clients-load-more")
	if got := c.rows(t, "clients-table", "clientId"); !slices.Equal(got, all) {
		t.Fatalf("after Load more to the end: %v, want %v", got, all)
	}
	c.step(t, "search batch-1", setValue("#client-search", "BATCH-1"), idle())
	want := c.listAll(t, "/admin/clients?name_prefix=batch-1", "client_id")
	if got := c.rows(t, "clients-table", "clientId"); !slices.Equal(got, want) || len(want) != 10 {
		t.Errorf("search BATCH-1: the page lists %v, the API %v (want batch-10 to batch-19)", got, want)
	}
	c.step(t, "no search", setValue("#client-search", ""), setValue("#clients-limit", "100"), idle())
}

func (c *consoleRun) createClient(t *testing.T) {
	c.step(t, "create a client",
		chromedp.Click(chromedp.CSS("#nav-clients")), idle(),
		chromedp.WaitVisible(chromedp.CSS("#client-form")),
		chromedp.SendKeys(chromedp.CSS("#client-name"), "billing-batch"),
		chromedp.SendKeys(chromedp.CSS("#client-scope"), "billing:read"),
		chromedp.Click(chromedp.CSS("#client-submit")),
		chromedp.WaitVisible(chromedp.CSS("#secret-box")),
	)
	clientID, secret := c.text(t, "#secret-client-id"), c.text(t, "#secret-value")
	c.shot(t, "client-secret-once")
	if clientID == "" || len(secret) < 40 {
		t.Fatalf("secret box shows client %q secret %q", clientID, secret)
	}
	if r := c.clientCredentials(t, clientID, secret, "billing:read"); r.Status != http.StatusOK {
		t.Fatalf("client_credentials with the secret the console showed: %d %s", r.Status, r.Body)
	}
	c.clientID, c.secret = clientID, secret
	c.dismissSecret(t)
	// Reloading the list shows the client, never a secret.
	c.step(t, "reload clients", chromedp.Click(chromedp.CSS("#clients-reload")), idle(),
		chromedp.WaitVisible(chromedp.CSS(`#clients-table tr[data-client-id="`+clientID+`"]`)))
	if c.pageHolds(t, secret) {
		t.Fatal("the secret is still in the page after it was dismissed")
	}
}

func (c *consoleRun) editClient(t *testing.T) {
	if c.clientID == "" {
		t.Skip("no client: creating it failed")
	}
	row := `#clients-table tr[data-client-id="` + c.clientID + `"]`
	c.step(t, "open the client", chromedp.Click(chromedp.CSS(row+` button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#client-cancel")))
	if v := c.value(t, "#client-scope"); v != "billing:read" {
		t.Errorf("the edit form shows scope %q, want billing:read", v)
	}
	c.act(t, "save the client", "Client billing-nightly saved.",
		setValue("#client-name", "billing-nightly"),
		setValue("#client-scope", "billing:read billing:write"),
		chromedp.Click(chromedp.CSS("#client-submit")))
	c.step(t, "wait for the new name", chromedp.Poll[chromedp.Void](
		fmt.Sprintf(`(document.querySelector(%s)||{}).textContent?.includes("billing-nightly")`, js(row)),
		chromedp.WithPollingTimeout(10*time.Second)))
	c.shot(t, "client-edited")
	r := c.call(t, http.MethodGet, "/admin/clients/"+c.clientID, nil)
	var got struct {
		Name  string `json:"client_name"`
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal(r.Body, &got); r.Status != http.StatusOK || err != nil ||
		got.Name != "billing-nightly" || got.Scope != "billing:read billing:write" {
		t.Fatalf("GET the client after Save: %d %s, want name billing-nightly and scope billing:read billing:write", r.Status, r.Body)
	}
	if r := c.clientCredentials(t, c.clientID, c.secret, "billing:write"); r.Status != http.StatusOK {
		t.Fatalf("client_credentials for the added scope: %d %s", r.Status, r.Body)
	}
	if visible(t, c.browser, "#client-cancel") || c.text(t, "#client-form-title") != "New client" {
		t.Error("after Save the form still edits the client")
	}
}

func (c *consoleRun) rotateClientSecret(t *testing.T) {
	if c.clientID == "" {
		t.Skip("no client: creating it failed")
	}
	row := `#clients-table tr[data-client-id="` + c.clientID + `"]`
	c.step(t, "rotate, first click", chromedp.Click(chromedp.CSS(row+` button[data-action="rotate-secret"]`)))
	c.act(t, "rotate, confirm", "New secret of billing-nightly",
		chromedp.Click(chromedp.CSS(row+` button[data-action="rotate-secret"].confirm`)))
	c.step(t, "wait for the secret", chromedp.WaitVisible(chromedp.CSS("#secret-box")))
	secret := c.text(t, "#secret-value")
	c.shot(t, "client-secret-rotated")
	if got := c.text(t, "#secret-client-id"); got != c.clientID || len(secret) < 40 || secret == c.secret {
		t.Fatalf("after rotation the secret box shows client %q secret %q", got, secret)
	}
	wantOAuthError(t, c.clientCredentials(t, c.clientID, c.secret, "billing:read"), http.StatusUnauthorized, "invalid_client")
	if r := c.clientCredentials(t, c.clientID, secret, "billing:read"); r.Status != http.StatusOK {
		t.Fatalf("client_credentials with the new secret: %d %s", r.Status, r.Body)
	}
	c.secret = secret
	c.dismissSecret(t)
	if c.pageHolds(t, secret) {
		t.Fatal("the new secret is still in the page after it was dismissed")
	}
}

func (c *consoleRun) deleteClient(t *testing.T) {
	if c.clientID == "" {
		t.Skip("no client: creating it failed")
	}
	row := `#clients-table tr[data-client-id="` + c.clientID + `"]`
	c.step(t, "delete, first click", chromedp.Click(chromedp.CSS(row+` button[data-action="delete"]`)))
	c.act(t, "delete, confirm", "Client billing-nightly deleted",
		chromedp.Click(chromedp.CSS(row+` button[data-action="delete"].confirm`)))
	c.step(t, "wait for the row to go", chromedp.WaitNotPresent(chromedp.CSS(row)))
	c.shot(t, "client-deleted")
	if r := c.call(t, http.MethodGet, "/admin/clients/"+c.clientID, nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET the deleted client: %d %s, want 404", r.Status, r.Body)
	}
	wantOAuthError(t, c.clientCredentials(t, c.clientID, c.secret, "billing:read"), http.StatusUnauthorized, "invalid_client")
}

// rotateKeyPrepublished: the new key is published (in the JWKS) but does
// not sign yet, and the timeline says so.
func (c *consoleRun) rotateKeyPrepublished(t *testing.T) {
	c.step(t, "open keys", chromedp.Click(chromedp.CSS("#nav-keys")), idle(),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tbody tr`)))
	status := c.act(t, "rotate with pre-publication", "published", chromedp.Click(chromedp.CSS("#rotate-prepublish")))
	kid := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(status, "New key "), " ", 2)[0])
	c.step(t, "wait for the key", chromedp.WaitVisible(chromedp.CSS(`#keys-timeline li[data-kid="`+kid+`"]`)))
	c.shot(t, "keys-prepublished")
	if state := c.text(t, `#keys-table tr[data-kid="`+kid+`"] .state`); state != "published" {
		t.Fatalf("new key %s is %q in the keys list, want published", kid, state)
	}
	li := `#keys-timeline li[data-kid="` + kid + `"]`
	if cls, text := c.attr(t, li, "class"), c.text(t, li); cls != "published" || !strings.HasPrefix(text, "published") {
		t.Errorf("timeline entry of %s: class %q text %q, want published", kid, cls, text)
	}
	k := c.key(t, kid)
	if k.State != "published" || !k.ActivatesAt.After(time.Now()) {
		t.Fatalf("GET /admin/keys: %+v, want published, signing later", k)
	}
	if jwks := string(getOK(t, c.srv.URL+"/.well-known/jwks.json")); !strings.Contains(jwks, kid) {
		t.Fatalf("the prepublished key %s is not in the JWKS: %s", kid, jwks)
	}
	if got := c.signingKID(t); got == kid {
		t.Fatalf("a token issued now is signed by the prepublished key %s", kid)
	}
}

// rotateKeyNow: the new key signs at once.
func (c *consoleRun) rotateKeyNow(t *testing.T) {
	c.step(t, "open keys", chromedp.Click(chromedp.CSS("#nav-keys")), idle(),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tbody tr`)))
	status := c.act(t, "rotate now", "signs from", chromedp.Click(chromedp.CSS("#rotate-now")))
	kid := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(status, "New key "), " ", 2)[0])
	c.step(t, "wait for the key", chromedp.WaitVisible(chromedp.CSS(`#keys-timeline li[data-kid="`+kid+`"]`)))
	c.shot(t, "keys-rotated-now")
	if state := c.text(t, `#keys-table tr[data-kid="`+kid+`"] .state`); state != "active" {
		t.Fatalf("new key %s is %q in the keys list, want active", kid, state)
	}
	if k := c.key(t, kid); k.State != "active" {
		t.Fatalf("GET /admin/keys: %+v, want active", k)
	}
	if got := c.signingKID(t); got != kid {
		t.Fatalf("a token issued after Rotate now is signed by %s, want %s", got, kid)
	}
}

// auditTrail: the audit page lists what the subtests above did, filters
// by action and target, and pages with More.
func (c *consoleRun) auditTrail(t *testing.T) {
	if !visible(t, c.browser, "#nav-audit") {
		t.Skip("this server has no GET /admin/audit")
	}
	c.step(t, "open the audit trail", chromedp.Click(chromedp.CSS("#nav-audit")), idle(),
		chromedp.WaitVisible(chromedp.CSS(`#audit-table tbody tr`)))
	c.shot(t, "audit")

	// Filter by action.
	c.searchAudit(t, "", "user.unlock", "")
	want := c.auditEvents(t, "action=user.unlock")
	if got := c.auditRows(t); !slices.Equal(got, eventIDs(want)) || len(got) == 0 {
		t.Errorf("action user.unlock: the page lists events %v, the API %v", got, eventIDs(want))
	}
	for _, a := range c.columnTexts(t, 3) {
		if a != "user.unlock" {
			t.Errorf("filtered by action user.unlock, the page lists action %q", a)
		}
	}
	c.shot(t, "audit-filter-action")

	// Filter by target: what was done to erin, from her panel.
	erin := "user:" + c.userID(t, "erin")
	c.openUser(t, "erin")
	c.step(t, "erin's audit trail", chromedp.Evaluate[chromedp.Void](`document.querySelector("#audit-table tbody").replaceChildren()`),
		chromedp.Click(chromedp.CSS("#user-audit")), chromedp.WaitVisible(chromedp.CSS("#audit-table tbody tr")))
	if v := c.value(t, "#audit-target"); v != erin {
		t.Errorf("the audit trail of erin's panel filters target %q, want %s", v, erin)
	}
	want = c.auditEvents(t, "target="+erin)
	if got := c.auditRows(t); !slices.Equal(got, eventIDs(want)) || len(got) == 0 {
		t.Errorf("target %s: the page lists events %v, the API %v", erin, got, eventIDs(want))
	}
	for _, tg := range c.columnTexts(t, 4) {
		if tg != erin {
			t.Errorf("filtered by target %s, the page lists target %q", erin, tg)
		}
	}
	if acts := c.columnTexts(t, 3); !containsAll(acts, "user.create", "user.set_roles", "user.mfa_required", "user.disable") {
		t.Errorf("erin's events in the page: %v", acts)
	}
	c.shot(t, "audit-filter-target")

	// Paging: 20 a page, More until the end; the page then lists every
	// event, in the API's order.
	c.step(t, "smaller pages", setValue("#audit-limit", "20"))
	c.searchAudit(t, "", "", "")
	all := c.auditEvents(t, "")
	if len(all) <= 40 {
		t.Fatalf("only %d audit events; the paging test needs more than two pages", len(all))
	}
	if got := c.auditRows(t); !slices.Equal(got, eventIDs(all[:20])) {
		t.Fatalf("first page of 20: the page lists %v, want %v", got, eventIDs(all[:20]))
	}
	for n := 20; visible(t, c.browser, "#audit-more"); {
		c.step(t, "more", chromedp.Click(chromedp.CSS("#audit-more")), chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`document.querySelectorAll("#audit-table tbody tr").length > %d`, n), chromedp.WithPollingTimeout(10*time.Second)))
		n = len(c.auditRows(t))
		if n == 40 {
			c.shot(t, "audit-more")
		}
	}
	if got := c.auditRows(t); !slices.Equal(got, eventIDs(all)) {
		t.Fatalf("after More to the end the page lists %d events %v, the API %d %v", len(got), got, len(all), eventIDs(all))
	}
	var mine []string
	for _, ev := range all {
		if ev.Actor == "user:"+c.rootID {
			mine = append(mine, ev.Action)
		}
	}
	if !containsAll(mine, "user.create", "user.disable", "user.enable", "user.unlock", "user.set_roles", "user.mfa_required",
		"user.set_password", "user.mfa_reset", "user.delete", "client.create", "client.update", "client.rotate_secret",
		"client.delete", "key.rotate") {
		t.Errorf("the console's administrator's events: %v", mine)
	}
	c.step(t, "default page size", setValue("#audit-limit", "100"))
}

// logout: nothing of the session is left in the page or the browser's
// storage, not even a secret shown and not dismissed.
func (c *consoleRun) logout(t *testing.T) {
	c.step(t, "create a client and leave its secret shown",
		chromedp.Click(chromedp.CSS("#nav-clients")), idle(),
		chromedp.WaitVisible(chromedp.CSS("#client-form")),
		chromedp.SendKeys(chromedp.CSS("#client-name"), "left-open"),
		chromedp.Click(chromedp.CSS("#client-submit")),
		chromedp.WaitVisible(chromedp.CSS("#secret-box")))
	secret := c.text(t, "#secret-value")
	// Log out while a reload of the clients is under way (the page's
	// requests slowed down): its answer arrives after the logout.
	c.step(t, "log out during a reload", idle(),
		chromedp.Evaluate[chromedp.Void](`window.fastFetch = window.fetch;
			window.fetch = (...a) => new Promise((ok) => setTimeout(ok, 400)).then(() => window.fastFetch(...a))`),
		chromedp.Click(chromedp.CSS("#clients-reload")),
		chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")), idle(),
		chromedp.Evaluate[chromedp.Void](`window.fetch = window.fastFetch`))
	c.shot(t, "logged-out")
	if visible(t, c.browser, "#app") {
		t.Fatal("the console is still shown after logging out")
	}
	stored, err := chromedp.Run(c.browser, chromedp.Evaluate[int](`localStorage.length + sessionStorage.length + document.cookie.length`))
	if err != nil || stored != 0 {
		t.Fatalf("browser storage holds %d items (%v); tokens must stay in memory", stored, err)
	}
	if secret == "" || c.pageHolds(t, secret) {
		t.Error("after logging out the page still holds the client secret shown before")
	}
	for _, sel := range []string{"#users-table tbody tr", "#clients-table tbody tr", "#keys-table tbody tr", "#audit-table tbody tr"} {
		if n := count(t, c.browser, sel); n != 0 {
			t.Errorf("after logging out the page still holds %d rows %s", n, sel)
		}
	}
}

// step runs actions in the browser within a minute, failing the test
// with a screenshot and the status line when they fail.
func (c *consoleRun) step(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.browser, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		screenshot(t, c.browser, c.shots, fmt.Sprintf("failed-%s", strings.ReplaceAll(t.Name(), "/", "-")))
		status, _ := chromedp.Run(c.browser, chromedp.Text(chromedp.CSS("#status")))
		t.Fatalf("%s: %v (status line %q)", what, err, status)
	}
}

// act empties the status line, runs actions and waits until the status
// line says something, containing want when want is not empty; it
// returns what the status line says.
func (c *consoleRun) act(t *testing.T, what, want string, actions ...chromedp.Action[chromedp.Void]) string {
	t.Helper()
	c.step(t, what, append([]chromedp.Action[chromedp.Void]{
		chromedp.Evaluate[chromedp.Void](`document.getElementById("status").textContent = ""; document.getElementById("status").className = ""`),
	}, actions...)...)
	cond := `document.getElementById("status").textContent !== ""`
	if want != "" {
		cond = `document.getElementById("status").textContent.includes(` + js(want) + `)`
	}
	c.step(t, what+": wait for the status line", chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(20*time.Second)), idle())
	return c.text(t, "#status")
}

// poll reports whether the JavaScript expression cond becomes true
// within 10 s.
func (c *consoleRun) poll(t *testing.T, cond string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.browser, 10*time.Second)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(10*time.Second))) == nil
}

// waitStatus waits until the status line contains want.
func (c *consoleRun) waitStatus(t *testing.T, what, want string) {
	t.Helper()
	c.step(t, what, chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent.includes(`+js(want)+`)`,
		chromedp.WithPollingTimeout(20*time.Second)))
}

func (c *consoleRun) statusClass(t *testing.T) string {
	t.Helper()
	return c.attr(t, "#status", "class")
}

// login opens the console afresh and sends the login form.
func (c *consoleRun) login(t *testing.T, user, password string) {
	t.Helper()
	c.step(t, "log in as "+user,
		chromedp.Navigate(c.srv.AdminURL+"/console/"),
		chromedp.WaitReady(chromedp.CSS(`body[data-ready="true"]`)),
		chromedp.SendKeys(chromedp.CSS("#login-username"), user),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
}

// openUser opens the user panel of username from the users page.
func (c *consoleRun) openUser(t *testing.T, username string) {
	t.Helper()
	row := `#users-table tr[data-username="` + username + `"]`
	c.step(t, "open "+username, chromedp.Click(chromedp.CSS("#nav-users")), idle(), chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.Click(chromedp.CSS(row+` button[data-action="edit"]`)), idle(),
		chromedp.Poll[chromedp.Void](`document.getElementById("user-panel-name").textContent === `+js(username)+
			` && !document.getElementById("user-panel").hidden`, chromedp.WithPollingTimeout(10*time.Second)))
}

func (c *consoleRun) closeUser(t *testing.T) {
	t.Helper()
	c.step(t, "close the panel", chromedp.Click(chromedp.CSS("#user-panel-close")), chromedp.WaitNotVisible(chromedp.CSS("#user-panel")))
}

func (c *consoleRun) dismissSecret(t *testing.T) {
	t.Helper()
	c.step(t, "dismiss the secret", chromedp.Click(chromedp.CSS("#secret-dismiss")), chromedp.WaitNotVisible(chromedp.CSS("#secret-box")))
	if s := c.text(t, "#secret-value"); s != "" {
		t.Fatalf("after dismissing, the page still holds the secret %q", s)
	}
}

// searchAudit sends the audit form with the filters given (empty: none)
// and waits for its answer.
func (c *consoleRun) searchAudit(t *testing.T, target, action, actor string) {
	t.Helper()
	c.step(t, "search the audit trail",
		setValue("#audit-target", target),
		setValue("#audit-action", action),
		setValue("#audit-actor", actor),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#audit-table tbody").replaceChildren()`),
		chromedp.Click(chromedp.CSS("#audit-search")),
		chromedp.WaitVisible(chromedp.CSS("#audit-table tbody tr")))
}

// auditRows returns the event IDs of the audit table's rows.
func (c *consoleRun) auditRows(t *testing.T) []int64 {
	t.Helper()
	ids, err := chromedp.Run(c.browser, chromedp.Evaluate[[]int64](
		`[...document.querySelectorAll("#audit-table tbody tr")].map((tr) => Number(tr.dataset.id))`))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// columnTexts returns the texts of the audit table's column n (from 1).
func (c *consoleRun) columnTexts(t *testing.T, n int) []string {
	t.Helper()
	s, err := chromedp.Run(c.browser, chromedp.Evaluate[[]string](fmt.Sprintf(
		`[...document.querySelectorAll("#audit-table tbody tr td:nth-child(%d)")].map((td) => td.textContent)`, n)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (c *consoleRun) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(c.browser, chromedp.Evaluate[string](`(document.querySelector(`+js(sel)+`) || {}).textContent ?? ""`))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (c *consoleRun) value(t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(c.browser, chromedp.Evaluate[string](`document.querySelector(`+js(sel)+`).value`))
	if err != nil {
		t.Fatalf("value of %s: %v", sel, err)
	}
	return s
}

func (c *consoleRun) attr(t *testing.T, sel, name string) string {
	t.Helper()
	s, err := chromedp.Run(c.browser, chromedp.Evaluate[string](`document.querySelector(`+js(sel)+`).getAttribute(`+js(name)+`) || ""`))
	if err != nil {
		t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return s
}

// pageHolds reports whether s is anywhere in the document, hidden or not,
// as text or as an input's value.
func (c *consoleRun) pageHolds(t *testing.T, s string) bool {
	t.Helper()
	held, err := chromedp.Run(c.browser, chromedp.Evaluate[bool](`document.documentElement.outerHTML.includes(`+js(s)+
		`) || [...document.querySelectorAll("input")].some((i) => i.value.includes(`+js(s)+`))`))
	if err != nil {
		t.Fatal(err)
	}
	return held
}

// shot saves a screenshot named after what it shows, numbered in order.
func (c *consoleRun) shot(t *testing.T, name string) {
	t.Helper()
	c.taken++
	screenshot(t, c.browser, c.shots, fmt.Sprintf("%02d-%s", c.taken, name))
	wide, err := chromedp.Run(c.browser, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if wide > 0 {
		t.Errorf("screenshot %s: the page is %d px wider than the window (it scrolls sideways)", name, wide)
	}
}

// call sends a request to the admin API with the test's own token.
func (c *consoleRun) call(t *testing.T, method, path string, body any) proctest.Response {
	t.Helper()
	return adminCall(t, c.srv, c.admin, method, path, body)
}

// consoleUserRep is the part of the admin API's user representation the
// test checks.
type consoleUserRep struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	Roles       []string `json:"roles"`
	Disabled    bool     `json:"disabled"`
	MFARequired bool     `json:"mfa_required"`
	MFAEnabled  bool     `json:"mfa_enabled"`
	Locked      bool     `json:"locked"`
}

// createUser creates a user through the admin API and returns its ID.
func (c *consoleRun) createUser(t *testing.T, username, password string, roles ...string) string {
	t.Helper()
	r := c.call(t, http.MethodPost, "/admin/users", map[string]any{"username": username, "password": password, "roles": roles})
	var u consoleUserRep
	if err := json.Unmarshal(r.Body, &u); r.Status != http.StatusCreated || err != nil || u.ID == "" {
		t.Fatalf("create user %s: %d %s", username, r.Status, r.Body)
	}
	return u.ID
}

// user reads a user through the admin API.
func (c *consoleRun) user(t *testing.T, id string) consoleUserRep {
	t.Helper()
	r := c.call(t, http.MethodGet, "/admin/users/"+id, nil)
	var u consoleUserRep
	if err := json.Unmarshal(r.Body, &u); r.Status != http.StatusOK || err != nil {
		t.Fatalf("GET user %s: %d %s", id, r.Status, r.Body)
	}
	return u
}

// userID returns the ID of username, from the CLI.
func (c *consoleRun) userID(t *testing.T, username string) string {
	t.Helper()
	var u consoleUserRep
	out := c.srv.CLI(t, "", "users", "get", username, "--output", "json")
	if err := json.Unmarshal(out, &u); err != nil || u.ID == "" {
		t.Fatalf("users get %s: %q: %v", username, out, err)
	}
	return u.ID
}

// consoleKey is the part of GET /admin/keys the test checks.
type consoleKey struct {
	KID         string    `json:"kid"`
	State       string    `json:"state"`
	ActivatesAt time.Time `json:"activates_at"`
}

func (c *consoleRun) key(t *testing.T, kid string) consoleKey {
	t.Helper()
	var ks []consoleKey
	if s := adminDo(t, c.srv, c.admin, http.MethodGet, "/admin/keys", &ks); s != http.StatusOK {
		t.Fatalf("GET /admin/keys: %d", s)
	}
	for _, k := range ks {
		if k.KID == kid {
			return k
		}
	}
	t.Fatalf("GET /admin/keys: no key %s in %+v", kid, ks)
	return consoleKey{}
}

// signingKID returns the kid of a token the server issues now.
func (c *consoleRun) signingKID(t *testing.T) string {
	t.Helper()
	tok := proctest.MustToken(t, c.clientCredentials(t, "", "", ""))
	h, _ := proctest.DecodeJWT(t, tok.AccessToken)
	kid, _ := h["kid"].(string)
	return kid
}

// clientCredentials asks for a client_credentials token as id with
// secret (HTTP Basic), with scope unless empty; without id, as a fresh
// client of the test.
func (c *consoleRun) clientCredentials(t *testing.T, id, secret, scope string) proctest.Response {
	t.Helper()
	if id == "" {
		cl := c.srv.CreateClient(t, "--name", "probe", "--grant-type", "client_credentials")
		id, secret = cl.ClientID, cl.ClientSecret
	}
	form := "grant_type=client_credentials"
	if scope != "" {
		form += "&scope=" + strings.ReplaceAll(scope, " ", "+")
	}
	return proctest.PostForm(t, c.srv.URL+"/oauth2/token", form, "Authorization", proctest.BasicAuth(id, secret))
}

// rows returns the data-key attribute (as in dataset) of the rows of
// table id.
func (c *consoleRun) rows(t *testing.T, id, key string) []string {
	t.Helper()
	s, err := chromedp.Run(c.browser, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#`+id+` tbody tr")].map((tr) => tr.dataset.`+key+`)`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listAll returns member key of every item of an admin API listing,
// following its Link rel="next" headers.
func (c *consoleRun) listAll(t *testing.T, path, key string) []string {
	t.Helper()
	next := regexp.MustCompile(`<([^>]*)>;\s*rel="next"`)
	var all []string
	for path != "" {
		r := c.call(t, http.MethodGet, path, nil)
		var items []map[string]any
		if err := json.Unmarshal(r.Body, &items); r.Status != http.StatusOK || err != nil {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		for _, it := range items {
			v, _ := it[key].(string)
			all = append(all, v)
		}
		path = ""
		if m := next.FindStringSubmatch(r.Header.Get("Link")); m != nil {
			path = m[1]
		}
	}
	return all
}

// consoleEvent is the part of an audit event the test checks.
type consoleEvent struct {
	ID      int64  `json:"id"`
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Target  string `json:"target"`
	Outcome string `json:"outcome"`
}

// auditEvents returns every event of GET /admin/audit?query, following
// next_cursor.
func (c *consoleRun) auditEvents(t *testing.T, query string) []consoleEvent {
	t.Helper()
	var all []consoleEvent
	cursor := ""
	for {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := c.call(t, http.MethodGet, "/admin/audit?"+q, nil)
		var page struct {
			Events     []consoleEvent `json:"events"`
			NextCursor string         `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.Body, &page); r.Status != http.StatusOK || err != nil {
			t.Fatalf("GET /admin/audit?%s: %d %s", q, r.Status, r.Body)
		}
		all = append(all, page.Events...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

func eventIDs(evs []consoleEvent) []int64 {
	ids := make([]int64, 0, len(evs))
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

// idle waits until the console has no request under way (and has
// shown what the last one answered).
func idle() chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`document.body.dataset.pending === "0"`, chromedp.WithPollingTimeout(20*time.Second))
}

// setValue sets the value of the form control sel as typing would end
// (input and change events), also to "", which chromedp.SetValue refuses.
func setValue(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(` + js(sel) + `); e.value = ` + js(v) +
		`; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); })()`)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sameSet reports whether got holds exactly want, in any order.
func sameSet(got []string, want ...string) bool {
	return len(got) == len(want) && containsAll(got, want...)
}

// containsAll reports whether got holds each of want.
func containsAll(got []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// artifactsDir returns the directory screenshots go to:
// $PORTCULLIS_TEST_ARTIFACTS/<test name> when set, else a temporary one.
func artifactsDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PORTCULLIS_TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// screenshot saves a full-page PNG (quality 100 means PNG) of the browser's page as dir/name.png
// and logs its path.
func screenshot(t *testing.T, browser context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// visible reports whether the element sel is shown (not hidden by itself
// or an ancestor).
func visible(t *testing.T, browser context.Context, sel string) bool {
	t.Helper()
	v, err := chromedp.Run(browser, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.offsetParent !== null; })()`, sel)))
	if err != nil {
		t.Fatalf("visibility of %s: %v", sel, err)
	}
	return v
}

// count returns how many elements match sel.
func count(t *testing.T, browser context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(browser, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// consoleUser is the part of `users get --output json` the test checks.
type consoleUser struct {
	Roles    []string `json:"roles"`
	Disabled bool     `json:"disabled"`
}

// consoleCLIUser reads a user through the CLI, outside the browser.
func consoleCLIUser(t *testing.T, srv *proctest.Server, username string) consoleUser {
	t.Helper()
	out := srv.CLI(t, "", "users", "get", username, "--output", "json")
	var u consoleUser
	if err := json.Unmarshal(out, &u); err != nil {
		t.Fatalf("users get %s: %q: %v", username, out, err)
	}
	return u
}

// auditRouteExists reports whether the admin listener has GET /admin/audit
// (401 without a token) rather than answering 404.
func auditRouteExists(t *testing.T, srv *proctest.Server) bool {
	t.Helper()
	resp, err := http.Get(srv.AdminURL + "/admin/audit")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound
}

// getOK returns the body of a 200 answer to GET u.
func getOK(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return b
}
