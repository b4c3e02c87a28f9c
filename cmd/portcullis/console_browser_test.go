package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// consoleAdmin and consolePassword are the administrator the console
// test logs in as.
const (
	consoleAdmin    = "root-admin"
	consolePassword = "console test password 7"
)

// TestBrowserAdminConsole drives the admin console in headless Chromium
// against the real binary: an administrator logs in (first-party
// challenge endpoint, PKCE, token from the public listener, CORS), creates
// a user, disables and enables it, creates a client and reads its secret
// once, rotates a signing key with pre-publication and sees it in the keys
// list. Each step is checked outside the browser too (CLI, token endpoint,
// JWKS), and screenshots are saved to $PORTCULLIS_TEST_ARTIFACTS (default a
// temporary directory).
func TestBrowserAdminConsole(t *testing.T) {
	browser := startChromiumFor(t, 4*time.Minute)
	shots := artifactsDir(t)
	// The first action on the browser's own context starts it there; one
	// on a derived context (step's timeouts) would tie the browser to it.
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	srv := portcullis.Serve(t)
	srv.CLI(t, consolePassword+"\n", "users", "create", "--username", consoleAdmin, "--password-stdin", "--role", "admin")
	srv.CLI(t, "plain user password 8\n", "users", "create", "--username", "mallory", "--password-stdin")

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, time.Minute)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			screenshot(t, browser, shots, "failed")
			status, _ := chromedp.Run(browser, chromedp.Text(chromedp.CSS("#status")))
			t.Fatalf("%s: %v (status line %q)", what, err, status)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	login := func(user, password string) {
		t.Helper()
		step("log in as "+user,
			chromedp.Navigate(srv.AdminURL+"/console/"),
			chromedp.WaitReady(chromedp.CSS(`body[data-ready="true"]`)),
			chromedp.SendKeys(chromedp.CSS("#login-username"), user),
			chromedp.SendKeys(chromedp.CSS("#login-password"), password),
			chromedp.Click(chromedp.CSS("#login-submit")),
		)
	}

	t.Run("NonAdminRefused", func(t *testing.T) {
		login("mallory", "plain user password 8")
		step("wait for the refusal", chromedp.Poll[chromedp.Void](
			`document.getElementById("status").textContent.includes("does not hold the role admin")`,
			chromedp.WithPollingTimeout(60*time.Second)))
		if vis := visible(t, browser, "#app"); vis {
			t.Fatal("the console opened for a user without role admin")
		}
		screenshot(t, browser, shots, "01-non-admin-refused")
	})

	login(consoleAdmin, consolePassword)
	step("wait for the users page", chromedp.WaitVisible(chromedp.CSS(`#users-table tr[data-username="`+consoleAdmin+`"]`)))
	screenshot(t, browser, shots, "02-users")

	if got, want := visible(t, browser, "#nav-audit"), auditRouteExists(t, srv); got != want {
		t.Errorf("audit tab visible = %v; want %v (GET /admin/audit exists: %v)", got, want, want)
	}

	t.Run("CreateDisableEnableUser", func(t *testing.T) {
		row := `#users-table tr[data-username="carol"]`
		step("create carol",
			chromedp.SendKeys(chromedp.CSS("#new-username"), "carol"),
			chromedp.SendKeys(chromedp.CSS("#new-password"), "a long password for her"),
			chromedp.SendKeys(chromedp.CSS("#new-roles"), "user, billing"),
			chromedp.Click(chromedp.CSS("#create-user")),
			chromedp.WaitVisible(chromedp.CSS(row)),
		)
		if u := consoleCLIUser(t, srv, "carol"); u.Disabled || strings.Join(u.Roles, ",") != "billing,user" && strings.Join(u.Roles, ",") != "user,billing" {
			t.Fatalf("after creation: %+v, want enabled with roles user and billing", u)
		}
		step("disable carol",
			chromedp.Click(chromedp.CSS(row+` button:nth-of-type(2)`)),
			chromedp.WaitVisible(chromedp.CSS(row+` .state .badge.bad`)),
		)
		screenshot(t, browser, shots, "03-user-disabled")
		if u := consoleCLIUser(t, srv, "carol"); !u.Disabled {
			t.Fatalf("after Disable: %+v, want disabled", u)
		}
		step("enable carol",
			chromedp.Click(chromedp.CSS(row+` button:nth-of-type(2)`)),
			chromedp.WaitVisible(chromedp.CSS(row+` .state .badge.good`)),
		)
		if u := consoleCLIUser(t, srv, "carol"); u.Disabled {
			t.Fatalf("after Enable: %+v, want enabled", u)
		}
		step("search", chromedp.SendKeys(chromedp.CSS("#user-search"), "car"))
		if n := count(t, browser, "#users-table tbody tr"); n != 1 {
			t.Errorf("search 'car' shows %d rows, want 1", n)
		}
	})

	t.Run("CreateClientSecretShownOnce", func(t *testing.T) {
		step("create a client",
			chromedp.Click(chromedp.CSS("#nav-clients")),
			chromedp.WaitVisible(chromedp.CSS("#client-form")),
			chromedp.SendKeys(chromedp.CSS("#client-name"), "billing-batch"),
			chromedp.SendKeys(chromedp.CSS("#client-scope"), "billing:read"),
			chromedp.Click(chromedp.CSS("#client-submit")),
			chromedp.WaitVisible(chromedp.CSS("#secret-box")),
		)
		clientID, secret := text("#secret-client-id"), text("#secret-value")
		screenshot(t, browser, shots, "04-client-secret-once")
		if clientID == "" || len(secret) < 40 {
			t.Fatalf("secret box shows client %q secret %q", clientID, secret)
		}
		// The secret works: a client_credentials grant with it.
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"billing:read"}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client_credentials with the secret the console showed: %d %s", resp.StatusCode, body)
		}
		step("dismiss the secret", chromedp.Click(chromedp.CSS("#secret-dismiss")),
			chromedp.WaitNotVisible(chromedp.CSS("#secret-box")))
		if s := text("#secret-value"); s != "" {
			t.Fatalf("after dismissing, the page still holds the secret %q", s)
		}
		// Reloading the list shows the client, never a secret.
		step("reload clients", chromedp.Click(chromedp.CSS("#clients-reload")),
			chromedp.WaitVisible(chromedp.CSS(`#clients-table tr[data-client-id="`+clientID+`"]`)))
		html, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.body.innerHTML`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(html, secret) {
			t.Fatal("the secret is still in the page after it was dismissed")
		}
	})

	t.Run("RotateKeyWithPrepublication", func(t *testing.T) {
		step("open keys", chromedp.Click(chromedp.CSS("#nav-keys")),
			chromedp.WaitVisible(chromedp.CSS(`#keys-table tbody tr`)))
		before := count(t, browser, "#keys-table tbody tr")
		step("rotate with pre-publication",
			chromedp.Click(chromedp.CSS("#rotate-prepublish")),
			chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelectorAll("#keys-table tbody tr").length > %d`, before),
				chromedp.WithPollingTimeout(30*time.Second)),
		)
		screenshot(t, browser, shots, "05-keys-prepublished")
		status := text("#status")
		kid := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(status, "New key "), " ", 2)[0])
		if !strings.Contains(status, "published") || kid == "" {
			t.Fatalf("status after rotation: %q", status)
		}
		state := text(`#keys-table tr[data-kid="` + kid + `"] .state`)
		if state != "published" {
			t.Fatalf("new key %s is %q in the keys list, want published", kid, state)
		}
		if jwks := string(getOK(t, srv.URL+"/.well-known/jwks.json")); !strings.Contains(jwks, kid) {
			t.Fatalf("the prepublished key %s is not in the JWKS: %s", kid, jwks)
		}
	})

	t.Run("Logout", func(t *testing.T) {
		step("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
		if visible(t, browser, "#app") {
			t.Fatal("the console is still shown after logging out")
		}
		stored, err := chromedp.Run(browser, chromedp.Evaluate[int](`localStorage.length + sessionStorage.length + document.cookie.length`))
		if err != nil || stored != 0 {
			t.Fatalf("browser storage holds %d items (%v); tokens must stay in memory", stored, err)
		}
	})
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
