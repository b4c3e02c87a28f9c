package resource_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// echoSubject writes "sub=<subject>" from the context claims.
var echoSubject = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := resource.ClaimsFromContext(r.Context())
	if !ok {
		http.Error(w, "no claims", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "sub=%s", c.Subject)
})

func TestMiddleware(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	v, _ := newTestVerifier(is, &fakeClock{t: testNow}, 0)
	valid := mint(t, is, mintOpts{kid: kid})
	expired := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) { c["exp"] = testNow.Add(-time.Hour).Unix() }})
	clientToken := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
		delete(c, "roles")
		delete(c, "preferred_username")
		c["sub"] = c["client_id"]
		c["scope"] = "users:read"
	}})

	mw := resource.Middleware(v)
	tests := []struct {
		name        string
		handler     http.Handler
		auth        []string
		wantStatus  int
		wantChallen string // exact WWW-Authenticate; "" means absent
		wantError   string // JSON "error"; "" for success
		wantBody    string // success body
	}{
		{"no token", mw(echoSubject), nil, 401, `Bearer realm="https://api.example.test"`, "unauthorized", ""},
		{"basic scheme", mw(echoSubject), []string{"Basic dXNlcjpwYXNz"}, 401, `Bearer realm="https://api.example.test"`, "unauthorized", ""},
		{"valid", mw(echoSubject), []string{"Bearer " + valid}, 200, "", "", "sub=user-123"},
		{"scheme lower case", mw(echoSubject), []string{"bearer " + valid}, 200, "", "", "sub=user-123"},
		{"scheme upper case, extra spaces", mw(echoSubject), []string{"BEARER   " + valid}, 200, "", "", "sub=user-123"},
		{"empty bearer", mw(echoSubject), []string{"Bearer "}, 400, `Bearer error="invalid_request"`, "invalid_request", ""},
		{"two Authorization headers", mw(echoSubject), []string{"Bearer " + valid, "Bearer " + valid}, 400, `Bearer error="invalid_request"`, "invalid_request", ""},
		{"expired", mw(echoSubject), []string{"Bearer " + expired}, 401, `Bearer error="invalid_token", error_description="token expired"`, "invalid_token", ""},
		{"garbage", mw(echoSubject), []string{"Bearer not-a-jwt"}, 401, `Bearer error="invalid_token", error_description="token is not a compact JWS"`, "invalid_token", ""},
		{"scope present", mw(resource.RequireScope("users:read", "profile")(echoSubject)), []string{"Bearer " + valid}, 200, "", "", "sub=user-123"},
		{"scope missing", mw(resource.RequireScope("users:read", "users:write")(echoSubject)), []string{"Bearer " + valid}, 403, `Bearer error="insufficient_scope", scope="users:read users:write"`, "insufficient_scope", ""},
		{"role present", mw(resource.RequireRole("admin")(echoSubject)), []string{"Bearer " + valid}, 200, "", "", "sub=user-123"},
		{"role missing", mw(resource.RequireRole("admin", "auditor")(echoSubject)), []string{"Bearer " + valid}, 403, `Bearer error="insufficient_scope", error_description="token lacks required role: admin auditor"`, "insufficient_scope", ""},
		{"client token has no roles", mw(resource.RequireRole("admin")(echoSubject)), []string{"Bearer " + clientToken}, 403, `Bearer error="insufficient_scope", error_description="token lacks required role: admin"`, "insufficient_scope", ""},
		{"scope present on a client token", mw(resource.RequireScope("users:read")(echoSubject)), []string{"Bearer " + clientToken}, 200, "", "", "sub=web-app"},
		{"user token", mw(resource.RequireUser()(echoSubject)), []string{"Bearer " + valid}, 200, "", "", "sub=user-123"},
		{"client token where a user is required", mw(resource.RequireUser()(echoSubject)), []string{"Bearer " + clientToken}, 403, `Bearer error="insufficient_scope", error_description="token does not identify a user"`, "insufficient_scope", ""},
		{"RequireScope without Middleware fails closed", resource.RequireScope("users:read")(echoSubject), []string{"Bearer " + valid}, 401, "Bearer", "unauthorized", ""},
		{"RequireUser without Middleware fails closed", resource.RequireUser()(echoSubject), []string{"Bearer " + valid}, 401, "Bearer", "unauthorized", ""},
		{"RequireRole without Middleware fails closed", resource.RequireRole("admin")(echoSubject), []string{"Bearer " + valid}, 401, "Bearer", "unauthorized", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, "/users/me", nil)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			tt.handler.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantChallen {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallen)
			}
			if tt.wantError == "" {
				if rec.Body.String() != tt.wantBody {
					t.Errorf("body = %q, want %q", rec.Body, tt.wantBody)
				}
				return
			}
			assertJSONError(t, rec, tt.wantError)
		})
	}
}

func assertJSONError(t *testing.T, rec *httptest.ResponseRecorder, wantError string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	if body["error"] != wantError || body["error_description"] == "" || len(body) != 2 {
		t.Errorf("body = %v, want error %q and a description", body, wantError)
	}
}

func TestMiddlewareKeysUnavailable(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	tok := mint(t, is, mintOpts{kid: kid})
	is.Close()
	v, _ := newTestVerifier(is, &fakeClock{t: testNow}, 0)

	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	resource.Middleware(v)(echoSubject).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After header")
	}
	if strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_token") {
		t.Error("an outage must not be reported as invalid_token")
	}
	assertJSONError(t, rec, resource.CodeTemporarilyUnavailable)
}

func TestClaimsIsUser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    resource.Claims
		want bool
	}{
		{"password grant", resource.Claims{Subject: "u-1", ClientID: "app", Username: "alice"}, true},
		{"password grant, public client", resource.Claims{Subject: "u-1", ClientID: "u-2", Username: "alice", Roles: []string{}}, true},
		{"client credentials", resource.Claims{Subject: "svc", ClientID: "svc"}, false},
		{"username but sub is the client", resource.Claims{Subject: "svc", ClientID: "svc", Username: "svc"}, false},
		{"sub differs but no username", resource.Claims{Subject: "u-1", ClientID: "app"}, false},
		{"roles alone do not make a user", resource.Claims{Subject: "svc", ClientID: "svc", Roles: []string{"admin"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.c.IsUser(); got != tt.want {
				t.Errorf("IsUser() = %v, want %v for %+v", got, tt.want, tt.c)
			}
		})
	}
}
