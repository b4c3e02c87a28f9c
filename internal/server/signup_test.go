package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/identitytest"
	"github.com/portcullis-auth/portcullis/internal/server"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
)

const signupMaxBytes = 1024

// signupServer starts a complete server (servertest) with sign-up enabled
// or not and request bodies capped at signupMaxBytes; it returns the
// public listener and the identity service.
func signupServer(t *testing.T, enabled bool, opts ...func(*server.Options)) (*httptest.Server, *identity.Service) {
	t.Helper()
	e := servertest.New(t, servertest.Options{MaxBodyBytes: signupMaxBytes, Server: func(o *server.Options) {
		o.Signup = enabled
		for _, opt := range opts {
			opt(o)
		}
	}})
	return e.Public, e.Users
}

type httpResult struct {
	status int
	header http.Header
	body   string
}

func postSignup(t *testing.T, srv *httptest.Server, body string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/signup", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func signupJSON(username, password string) string {
	b, _ := json.Marshal(map[string]string{"username": username, "password": password})
	return string(b)
}

// checkErrorBody asserts a JSON {"error","error_description"} body and
// returns the description.
func checkErrorBody(t *testing.T, r httpResult, status int, code string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("error body is not JSON: %q", r.body)
	}
	desc, _ := body["error_description"].(string)
	if len(body) != 2 || body["error"] != code || desc == "" {
		t.Errorf("error body %s, want exactly {\"error\":%q,\"error_description\":...}", r.body, code)
	}
	for _, leak := range []string{"goroutine", ".go:", "panic", "runtime."} {
		if strings.Contains(r.body, leak) {
			t.Errorf("error body leaks internals (%q): %s", leak, r.body)
		}
	}
	return desc
}

func TestSignupHandlerCreated(t *testing.T) {
	srv, s := signupServer(t, true)
	r := postSignup(t, srv, signupJSON("Alice", identitytest.Password))
	if r.status != http.StatusCreated {
		t.Fatalf("status %d body %s, want 201", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	id, _ := got["id"].(string)
	if len(got) != 2 || id == "" || got["username"] != "Alice" {
		t.Errorf("body %s, want exactly {\"id\",\"username\"}", r.body)
	}
	if loc := r.header.Get("Location"); !strings.HasSuffix(loc, "/"+id) {
		t.Errorf("Location %q does not name the new user %s", loc, id)
	}
	u, err := s.Get(t.Context(), id)
	if err != nil || u.Username != "Alice" || len(u.Roles) != 0 {
		t.Fatalf("stored user %+v, %v", u, err)
	}
	if _, err := s.Authenticate(t.Context(), "alice", identitytest.Password, "192.0.2.1"); err != nil {
		t.Errorf("the signed-up user cannot log in: %v", err)
	}
}

func TestSignupHandlerErrors(t *testing.T) {
	srv, s := signupServer(t, true)
	if r := postSignup(t, srv, signupJSON("Alice", identitytest.Password)); r.status != http.StatusCreated {
		t.Fatalf("seed user: status %d body %s", r.status, r.body)
	}
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		desc   []string // substrings of error_description
	}{
		{"duplicate", signupJSON("Alice", "another fine password"), 409, "conflict", []string{"taken"}},
		{"duplicate other case", signupJSON("aLICE", "another fine password"), 409, "conflict", []string{"taken"}},
		{"short password", signupJSON("bob", "short"), 400, "invalid_request", []string{"password", "at least 12"}},
		{"password is username", signupJSON("bobbybobbybob", "BobbyBobbyBob"), 400, "invalid_request", []string{"must not be the username"}},
		{"common password", signupJSON("bob", "111111111111"), 400, "invalid_request", []string{"too common"}},
		{"bad username", signupJSON("b", identitytest.Password), 400, "invalid_request", []string{"username", "3 to 64"}},
		{"username with slash", signupJSON("bob/admin", identitytest.Password), 400, "invalid_request", []string{"username"}},
		{"missing fields", `{}`, 400, "invalid_request", []string{"username"}},
		{"roles are not accepted", `{"username":"bob","password":"purple otter lamp 42","roles":["admin"]}`, 400, "invalid_request", []string{"unknown field"}},
		{"unknown field", `{"username":"bob","password":"purple otter lamp 42","admin":true}`, 400, "invalid_request", []string{"unknown field"}},
		// Strict JSON: member names match exactly, no member twice (the last
		// would win: a user named "admin" signed up as "a1b").
		{"field name in other case", `{"Username":"bob","password":"purple otter lamp 42"}`, 400, "invalid_request", []string{"unknown field"}},
		{"duplicate member", `{"username":"a1b","username":"admin","password":"purple otter lamp 42"}`, 400, "invalid_request", []string{"repeated"}},
		{"unknown field is not echoed", `{"username":"bob","password":"purple otter lamp 42","<img src=x onerror=alert(1)>":1}`, 400, "invalid_request", []string{"unknown field"}},
		{"malformed JSON", `{"username":"bob",`, 400, "invalid_request", []string{"malformed"}},
		{"not an object", `["bob","purple otter lamp 42"]`, 400, "invalid_request", nil},
		{"wrong type", `{"username":42,"password":"purple otter lamp 42"}`, 400, "invalid_request", []string{"username"}},
		{"trailing data", signupJSON("bob", identitytest.Password) + `{"x":1}`, 400, "invalid_request", []string{"exactly one"}},
		{"trailing garbage", signupJSON("bob", identitytest.Password) + `garbage`, 400, "invalid_request", nil},
		{"empty body", ``, 400, "invalid_request", nil},
		{"whitespace body", "  \n", 400, "invalid_request", nil},
		{"over MaxBytes", signupJSON("bob", strings.Repeat("p", signupMaxBytes)), 413, "request_too_large", nil},
		{"over MaxBytes after a valid object", signupJSON("bob", identitytest.Password) + strings.Repeat(" ", signupMaxBytes), 413, "request_too_large", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postSignup(t, srv, tc.body)
			desc := checkErrorBody(t, r, tc.status, tc.code)
			for _, want := range tc.desc {
				if !strings.Contains(desc, want) {
					t.Errorf("error_description %q lacks %q", desc, want)
				}
			}
			if strings.Contains(desc, identitytest.Password) {
				t.Errorf("error_description echoes the password: %q", desc)
			}
			if strings.Contains(desc, "<img") || strings.Contains(desc, "admin") || strings.Contains(desc, "Username") {
				t.Errorf("error_description echoes the input: %q", desc)
			}
		})
	}
	// None of the rejected requests created a user.
	us, err := s.List(t.Context())
	if err != nil || len(us) != 1 {
		t.Errorf("users after rejected sign-ups: %d, %v; want 1", len(us), err)
	}
}

func TestSignupHandlerDisabled(t *testing.T) {
	srv, s := signupServer(t, false)
	for _, body := range []string{signupJSON("bob", identitytest.Password), `not json`} {
		r := postSignup(t, srv, body)
		checkErrorBody(t, r, http.StatusForbidden, "forbidden")
	}
	if us, err := s.List(t.Context()); err != nil || len(us) != 0 {
		t.Errorf("disabled sign-up created users: %v %v", us, err)
	}
}

func TestSignupHandlerRateLimit(t *testing.T) {
	// Two sign-ups per minute and client IP, burst 2: a third at once is
	// refused.
	srv, s := signupServer(t, true, func(o *server.Options) { o.SignupPerMinutePerIP = 2 })
	for i, name := range []string{"user1", "user2"} {
		if r := postSignup(t, srv, signupJSON(name, identitytest.Password)); r.status != http.StatusCreated {
			t.Fatalf("sign-up %d within the burst: status %d body %s", i, r.status, r.body)
		}
	}
	r := postSignup(t, srv, signupJSON("user3", identitytest.Password))
	checkErrorBody(t, r, http.StatusTooManyRequests, "too_many_requests")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if _, err := s.GetByUsername(t.Context(), "user3"); err == nil {
		t.Error("a throttled sign-up created the user")
	}
}
