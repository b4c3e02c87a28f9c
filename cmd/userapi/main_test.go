package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// startUserAPI runs userapi with args plus --addr 127.0.0.1:0 and returns
// its base URL; the server stops (and run's error is checked) at cleanup.
func startUserAPI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append(args, "--addr", "127.0.0.1:0"), io.Discard, pw)
		pw.Close()
	}()
	addrc := make(chan string, 1)
	listening := regexp.MustCompile(`msg="userapi listening" addr=(\S+)`)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
	})
	select {
	case addr := <-addrc:
		return "http://" + addr
	case err := <-done:
		t.Fatalf("run exited early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("userapi did not log its listening address")
	}
	return ""
}

func TestUsersMe(t *testing.T) {
	t.Parallel()
	fi := newFakeIssuer(t)
	// A long --unknown-kid-wait: a loaded machine must not turn the
	// unknown-key case into a timeout.
	base := startUserAPI(t, "--issuer", fi.URL(), "--unknown-kid-wait", "10s")
	aud := base // the default audience is the server's own base URL

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	with := func(mod func(map[string]any)) map[string]any {
		c := userClaims(fi, aud)
		mod(c)
		return c
	}
	exp := time.Now().Add(15 * time.Minute).Unix()
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		wantStatus int
		wantBody   map[string]any // exact JSON, when set
		wantChall  string         // substring of WWW-Authenticate
		wantError  string         // JSON error code
	}{
		{"user token", "GET", "/users/me", "Bearer " + mint(t, fi, with(func(c map[string]any) { c["exp"] = exp }), "k1", nil), 200,
			map[string]any{"id": "user-42", "username": "alice", "roles": []any{"admin", "user"}, "scope": "openid profile",
				"client_id": "cli-1", "expires_at": time.Unix(exp, 0).UTC().Format(time.RFC3339)}, "", ""},
		// /users/me is about a user: a client_credentials token carries none.
		{"client credentials token", "GET", "/users/me", "Bearer " + mint(t, fi, with(func(c map[string]any) {
			delete(c, "roles")
			delete(c, "preferred_username")
			c["sub"] = "cli-1"
		}), "k1", nil), 403, nil, `Bearer error="insufficient_scope", error_description="token does not identify a user"`, "insufficient_scope"},
		{"token with a username but sub = client_id", "GET", "/users/me", "Bearer " + mint(t, fi, with(func(c map[string]any) {
			c["sub"] = "cli-1"
		}), "k1", nil), 403, nil, `Bearer error="insufficient_scope"`, "insufficient_scope"},
		{"token without a username", "GET", "/users/me", "Bearer " + mint(t, fi, with(func(c map[string]any) {
			delete(c, "preferred_username")
		}), "k1", nil), 403, nil, `Bearer error="insufficient_scope"`, "insufficient_scope"},
		{"no token", "GET", "/users/me", "", 401, nil, `Bearer realm="` + aud + `"`, "unauthorized"},
		{"garbage token", "GET", "/users/me", "Bearer abc.def.ghi", 401, nil, `error="invalid_token"`, "invalid_token"},
		{"expired", "GET", "/users/me", "Bearer " + mint(t, fi, with(func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
			c["nbf"] = c["iat"]
		}), "k1", nil), 401, nil, `error="invalid_token"`, "invalid_token"},
		{"wrong issuer", "GET", "/users/me", "Bearer " + mint(t, fi, with(func(c map[string]any) { c["iss"] = "http://evil.example" }), "k1", nil),
			401, nil, `error="invalid_token"`, "invalid_token"},
		{"wrong audience", "GET", "/users/me", "Bearer " + mint(t, fi, with(func(c map[string]any) { c["aud"] = []string{"http://other"} }), "k1", nil),
			401, nil, `error="invalid_token"`, "invalid_token"},
		{"unknown key", "GET", "/users/me", "Bearer " + mint(t, fi, userClaims(fi, aud), "k9", other), 401, nil, `error="invalid_token"`, "invalid_token"},
		{"forged with known kid", "GET", "/users/me", "Bearer " + mint(t, fi, userClaims(fi, aud), "k1", other), 401, nil, `error="invalid_token"`, "invalid_token"},
		{"liveness", "GET", "/health/alive", "", 200, map[string]any{"status": "ok"}, "", ""},
		{"wrong method", "POST", "/users/me", "", 405, nil, "", "method_not_allowed"},
		{"unknown path", "GET", "/nope", "", 404, nil, "", "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tt.method, base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, tt.wantChall) || (tt.wantChall == "") != (ch == "") {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", ch, tt.wantChall)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if tt.wantBody != nil {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(tt.wantBody)
				if string(gj) != string(wj) {
					t.Errorf("body = %s, want %s", gj, wj)
				}
			}
			if tt.wantError != "" && (got["error"] != tt.wantError || got["error_description"] == "") {
				t.Errorf("body = %v, want error %q with a description", got, tt.wantError)
			}
		})
	}
}

func TestUsersMeIssuerDown(t *testing.T) {
	t.Parallel()
	fi := newFakeIssuer(t)
	tok := mint(t, fi, userClaims(fi, "http://api.test"), "k1", nil)
	fi.Close()
	base := startUserAPI(t, "--issuer", fi.URL(), "--audience", "http://api.test")

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestUsersMeIssuerHangs: once keys were fetched, an issuer that accepts
// connections and never answers does not slow /users/me down, even with a
// stale JWKS cache; a token with an unknown kid fails after a short wait.
func TestUsersMeIssuerHangs(t *testing.T) {
	t.Parallel()
	fi := newFakeIssuer(t)
	fi.SetCacheControl("no-store") // stale after MinRefreshInterval
	const aud = "http://api.test"
	const wait = 300 * time.Millisecond
	base := startUserAPI(t, "--issuer", fi.URL(), "--audience", aud, "--unknown-kid-wait", wait.String())
	// Concurrent requests may leave connections that never carried a
	// request, which graceful shutdown waits 5s for; close them first.
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	var jti atomic.Int64
	get := func(kid string, key any) (int, time.Duration) {
		t.Helper()
		c := userClaims(fi, aud)
		c["jti"] = fmt.Sprint("jti-", jti.Add(1)) // a new token: not in the verified-token cache
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/users/me", nil)
		req.Header.Set("Authorization", "Bearer "+mint(t, fi, c, kid, key))
		start := time.Now()
		resp, err := client.Do(req)
		d := time.Since(start)
		if err != nil {
			t.Error(err)
			return 0, d
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, d
	}
	// Keys fetched (the start-up fetch may still be running).
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _ := get("k1", nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %d, want 200 once the keys are fetched", status)
		}
		time.Sleep(20 * time.Millisecond)
	}

	fi.Hang()
	time.Sleep(resource.DefaultMinRefreshInterval + 500*time.Millisecond) // the cache is stale now

	// Generous bound: verifying takes a millisecond, the hung fetch seconds.
	const fast = time.Second
	for i := range 3 {
		status, d := get("k1", nil)
		t.Logf("request %d with a known key, issuer hung: %d in %v", i, status, d)
		if status != http.StatusOK || d > fast {
			t.Errorf("request %d with a known key: status %d in %v, want 200 in < %v", i, status, d, fast)
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	for range 10 {
		wg.Go(func() {
			if status, _ := get("k1", nil); status != http.StatusOK {
				t.Errorf("concurrent request with a known key: status %d, want 200", status)
			}
		})
	}
	wg.Wait()
	t.Logf("10 concurrent requests with a known key, issuer hung: %v", time.Since(start))
	if d := time.Since(start); d > fast {
		t.Errorf("10 concurrent requests with a known key took %v, want < %v", d, fast)
	}

	// A key the cache does not have: invalid after --unknown-kid-wait.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	status, d := get("k9", other)
	t.Logf("request with an unknown key, issuer hung: %d in %v", status, d)
	if status != http.StatusUnauthorized || d > wait+time.Second {
		t.Errorf("unknown key: status %d in %v, want 401 in < %v", status, d, wait+time.Second)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{"flags", []string{"--issuer", "http://iss", "--addr", ":9000", "--audience", "aud", "--unknown-kid-wait", "500ms"}, nil,
			config{Issuer: "http://iss", Addr: ":9000", Audience: "aud", UnknownKIDWait: 500 * time.Millisecond, StepUpACR: "2"}, ""},
		{"env", nil, map[string]string{"USERAPI_ISSUER": "https://iss", "USERAPI_ADDR": "127.0.0.1:1", "USERAPI_AUDIENCE": "a",
			"USERAPI_UNKNOWN_KID_WAIT": "1s"},
			config{Issuer: "https://iss", Addr: "127.0.0.1:1", Audience: "a", UnknownKIDWait: time.Second, StepUpACR: "2"}, ""},
		{"flags override env", []string{"--issuer", "http://flag", "--audience", "fa", "--unknown-kid-wait", "3s"},
			map[string]string{"USERAPI_ISSUER": "http://env", "USERAPI_ADDR": ":7000", "USERAPI_AUDIENCE": "ea", "USERAPI_UNKNOWN_KID_WAIT": "1s"},
			config{Issuer: "http://flag", Addr: ":7000", Audience: "fa", UnknownKIDWait: 3 * time.Second, StepUpACR: "2"}, ""},
		{"defaults", []string{"--issuer", "http://iss"}, nil,
			config{Issuer: "http://iss", Addr: ":8090", UnknownKIDWait: resource.DefaultUnknownKIDWait, StepUpACR: "2"}, ""},
		{"unknown-kid-wait zero", []string{"--issuer", "http://iss", "--unknown-kid-wait", "0s"}, nil, config{}, "must be positive"},
		{"unknown-kid-wait negative", []string{"--issuer", "http://iss", "--unknown-kid-wait", "-1s"}, nil, config{}, "must be positive"},
		{"unknown-kid-wait env malformed", []string{"--issuer", "http://iss"}, map[string]string{"USERAPI_UNKNOWN_KID_WAIT": "soon"}, config{}, "USERAPI_UNKNOWN_KID_WAIT"},
		{"issuer missing", nil, nil, config{}, "required"},
		{"issuer not a URL", []string{"--issuer", "iss.example"}, nil, config{}, "not an absolute"},
		{"stray argument", []string{"--issuer", "http://iss", "extra"}, nil, config{}, "unexpected"},
		{"unknown flag", []string{"--nope"}, nil, config{}, "not defined"},
		{"external-url flag", []string{"--issuer", "http://iss", "--external-url", "https://api.example.com/userapi"}, nil,
			config{Issuer: "http://iss", Addr: ":8090", UnknownKIDWait: resource.DefaultUnknownKIDWait, ExternalURL: "https://api.example.com/userapi", StepUpACR: "2"}, ""},
		{"external-url env", []string{"--issuer", "http://iss"}, map[string]string{"USERAPI_EXTERNAL_URL": "https://api.example.com"},
			config{Issuer: "http://iss", Addr: ":8090", UnknownKIDWait: resource.DefaultUnknownKIDWait, ExternalURL: "https://api.example.com", StepUpACR: "2"}, ""},
		{"external-url flag overrides env", []string{"--issuer", "http://iss", "--external-url", "https://flag.example"},
			map[string]string{"USERAPI_EXTERNAL_URL": "https://env.example"},
			config{Issuer: "http://iss", Addr: ":8090", UnknownKIDWait: resource.DefaultUnknownKIDWait, ExternalURL: "https://flag.example", StepUpACR: "2"}, ""},
		{"step-up flags", []string{"--issuer", "http://iss", "--step-up-acr", " 2, 3,,urn:acr:mfa ", "--step-up-max-age", "5m"}, nil,
			config{Issuer: "http://iss", Addr: ":8090", UnknownKIDWait: resource.DefaultUnknownKIDWait, StepUpACR: "2 3 urn:acr:mfa", StepUpMaxAge: 5 * time.Minute}, ""},
		{"step-up env", []string{"--issuer", "http://iss"}, map[string]string{"USERAPI_STEP_UP_ACR": "3 4", "USERAPI_STEP_UP_MAX_AGE": "90s"},
			config{Issuer: "http://iss", Addr: ":8090", UnknownKIDWait: resource.DefaultUnknownKIDWait, StepUpACR: "3 4", StepUpMaxAge: 90 * time.Second}, ""},
		{"step-up flags override env", []string{"--issuer", "http://iss", "--step-up-acr", "5", "--step-up-max-age", "0"},
			map[string]string{"USERAPI_STEP_UP_ACR": "3", "USERAPI_STEP_UP_MAX_AGE": "90s"},
			config{Issuer: "http://iss", Addr: ":8090", UnknownKIDWait: resource.DefaultUnknownKIDWait, StepUpACR: "5"}, ""},
		{"step-up-acr empty", []string{"--issuer", "http://iss", "--step-up-acr", " , "}, nil, config{}, "at least one acr value"},
		{"step-up-acr with a quote", []string{"--issuer", "http://iss", "--step-up-acr", `2"`}, nil, config{}, "printable ASCII"},
		{"step-up-acr non-ASCII", []string{"--issuer", "http://iss", "--step-up-acr", "stärker"}, nil, config{}, "printable ASCII"},
		{"step-up-max-age negative", []string{"--issuer", "http://iss", "--step-up-max-age", "-1m"}, nil, config{}, "--step-up-max-age"},
		{"step-up-max-age fractional", []string{"--issuer", "http://iss", "--step-up-max-age", "1.5s"}, nil, config{}, "whole number of seconds"},
		{"step-up-max-age env malformed", []string{"--issuer", "http://iss"}, map[string]string{"USERAPI_STEP_UP_MAX_AGE": "300"}, config{}, "USERAPI_STEP_UP_MAX_AGE"},
		{"external-url not absolute", []string{"--issuer", "http://iss", "--external-url", "api.example.com"}, nil, config{}, "--external-url"},
		{"external-url with a query", []string{"--issuer", "http://iss", "--external-url", "https://api.example.com/?a=b"}, nil, config{}, "--external-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseConfig = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := parseConfig([]string{"--help"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: err = %v, want flag.ErrHelp", err)
	}
}

func TestDefaultAudience(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		port int
		want string
	}{
		{":8090", 8090, "http://localhost:8090"},
		{"0.0.0.0:8090", 8090, "http://localhost:8090"},
		{"[::]:8090", 8090, "http://localhost:8090"},
		{"127.0.0.1:0", 41234, "http://127.0.0.1:41234"},
		{"api.internal:9000", 9000, "http://api.internal:9000"},
		{"[::1]:9000", 9000, "http://[::1]:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			if got := defaultAudience(tt.addr, &net.TCPAddr{Port: tt.port}); got != tt.want {
				t.Errorf("defaultAudience(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestRunListenError(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"--issuer", "http://iss", "--addr", "256.0.0.1:bad"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("run = %v, want a listen error", err)
	}
}

// TestUsersMeDPoP: without --external-url, proofs name the URL userapi is
// reached at; /users/me answers a bound client_credentials token in the
// DPoP scheme.
func TestUsersMeDPoP(t *testing.T) {
	t.Parallel()
	fi := newFakeIssuer(t)
	base := startUserAPI(t, "--issuer", fi.URL(), "--unknown-kid-wait", "10s")
	key, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: dpop.NewTransport(key, nil)}
	user := userClaims(fi, base)
	user["cnf"] = map[string]any{"jkt": key.Thumbprint()}
	svc := userClaims(fi, base)
	delete(svc, "preferred_username")
	delete(svc, "roles")
	svc["sub"] = "cli-1"
	svc["cnf"] = map[string]any{"jkt": key.Thumbprint()}
	tests := []struct {
		name       string
		claims     map[string]any
		wantStatus int
		wantChall  string
	}{
		{"user token", user, 200, ""},
		{"client credentials token", svc, 403, `DPoP error="insufficient_scope", error_description="token does not identify a user"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/users/me", nil)
			req.Header.Set("Authorization", "DPoP "+mint(t, fi, tt.claims, "k1", nil))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("WWW-Authenticate") != tt.wantChall {
				t.Fatalf("%d %q %s; want %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body, tt.wantStatus, tt.wantChall)
			}
		})
	}
}
