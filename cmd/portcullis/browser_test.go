package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is the Debian package's binary; .ci/run installs it.
const chromiumPath = "/usr/bin/chromium"

// swaggerFetch performs the password grant the way Swagger UI's
// "Authorize" dialog does for a public client: fetch, form body,
// X-Requested-With, and HTTP Basic with the client ID and an empty secret.
// It resolves to JSON: the response status and body fields, or the error
// fetch rejected with.
const swaggerFetch = `(async (tokenURL, clientID, username, password) => {
  try {
    const r = await fetch(tokenURL, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Requested-With": "XMLHttpRequest",
        "Authorization": "Basic " + btoa(clientID + ":"),
      },
      body: new URLSearchParams({grant_type: "password", username, password}).toString(),
    });
    const body = await r.json();
    return JSON.stringify({status: r.status, token_type: body.token_type || "", access_token: body.access_token || "", error: body.error || ""});
  } catch (e) {
    return JSON.stringify({fetch_error: String(e)});
  }
})(%q, %q, %q, %q)`

// fetchResult is what swaggerFetch resolves to.
type fetchResult struct {
	Status      int    `json:"status"`
	TokenType   string `json:"token_type"`
	AccessToken string `json:"access_token"`
	Error       string `json:"error"`
	FetchError  string `json:"fetch_error"`
}

// TestBrowserPasswordGrantCORS: headless Chromium loads a page from another
// origin (another port) that calls the token endpoint with fetch as Swagger
// UI does. From an origin registered on the client the token is readable;
// from any other origin fetch rejects ("Failed to fetch").
func TestBrowserPasswordGrantCORS(t *testing.T) {
	browser := startChromium(t)
	allowed, other := frontEnd(t), frontEnd(t)

	srv := portcullis.Serve(t)
	spa := srv.CreateClient(t, "--name", "swagger-ui", "--public", "--audience", "https://api.example.test",
		"--cors-origin", allowed.URL)
	signup(t, srv.URL, "alice", "correct horse battery")

	grant := func(t *testing.T, pageURL, password string) fetchResult {
		t.Helper()
		script := fmt.Sprintf(swaggerFetch, srv.URL+"/oauth2/token", spa.ClientID, "alice", password)
		var res fetchResult
		if err := json.Unmarshal([]byte(runInPage(t, browser, pageURL, script)), &res); err != nil {
			t.Fatalf("page result: %v", err)
		}
		return res
	}

	t.Run("AllowedOrigin", func(t *testing.T) {
		res := grant(t, allowed.URL, "correct horse battery")
		if res.Status != http.StatusOK || !strings.EqualFold(res.TokenType, "bearer") || strings.Count(res.AccessToken, ".") != 2 {
			t.Fatalf("from %s: %+v, want a readable bearer token", allowed.URL, res)
		}
	})
	t.Run("AllowedOriginReadsErrors", func(t *testing.T) {
		res := grant(t, allowed.URL, "not the password")
		if res.Status != http.StatusBadRequest || res.Error != "invalid_grant" {
			t.Fatalf("from %s with a wrong password: %+v, want a readable invalid_grant", allowed.URL, res)
		}
	})
	t.Run("OtherOriginBlocked", func(t *testing.T) {
		res := grant(t, other.URL, "correct horse battery")
		if !strings.Contains(res.FetchError, "TypeError") || !strings.Contains(res.FetchError, "Failed to fetch") || res.AccessToken != "" {
			t.Fatalf("from %s: %+v, want fetch to reject with TypeError: Failed to fetch", other.URL, res)
		}
	})
}

// frontEnd serves a front end's page on its own origin (a new loopback
// port) until the test ends.
func frontEnd(t *testing.T) *httptest.Server {
	t.Helper()
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>front end</title><p>front end</p>")
	})
	s := httptest.NewServer(page)
	t.Cleanup(s.Close)
	return s
}

// startChromium starts headless Chromium for the test, skipping it when
// Chromium is not installed (failing it instead when
// PORTCULLIS_TEST_BROWSER=1, as .ci/run sets), and returns the browser's
// context, which ends after 90 s; the browser exits when the test ends.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	return startChromiumFor(t, 90*time.Second)
}

// startChromiumFor is startChromium with the browser's context ending
// after timeout.
func startChromiumFor(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("PORTCULLIS_TEST_BROWSER") == "1" {
			t.Fatalf("%s not found and PORTCULLIS_TEST_BROWSER=1: %v", chromiumPath, err)
		}
		t.Skipf("%s not found (install the Debian package chromium, as .ci/run does): %v", chromiumPath, err)
	}
	// The user data directory is removed after the browser has exited
	// (clean-ups run last in, first out).
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Without these Chromium dials out and this closed network refuses
		// its connections.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	return browser
}

// runInPage navigates the browser to pageURL and returns what script, an
// expression resolving to a string, resolves to there.
func runInPage(t *testing.T, browser context.Context, pageURL, script string) string {
	t.Helper()
	if err := chromedp.Do(browser, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("browser: navigate to %s: %v", pageURL, err)
	}
	out, err := chromedp.Run(browser, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: run the page's script: %v", err)
	}
	return out
}
