package adminapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth/clientcache"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

const (
	api            = "https://api.example.test"
	maxBytes       = 4096
	prepublication = time.Hour
	userPassword   = "purple otter lamp 42"
)

// env is a complete authorization server in-process (servertest: the
// public and admin listeners wired by server.New as the binary wires
// them, on a real SQLite store), with an admin client and its token.
type env struct {
	*servertest.Env
	adminID     string
	adminSecret string
	adminToken  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the given client cache options (nil: the
// default).
func newEnvWith(t *testing.T, cache *clientcache.Options) *env {
	t.Helper()
	e := &env{Env: servertest.New(t, servertest.Options{
		Keys:         keys.Options{Prepublication: prepublication},
		Lockout:      identity.LockoutPolicy{MaxFailures: 3, Window: time.Hour, Duration: time.Hour},
		MaxBodyBytes: maxBytes,
		ClientCache:  cache,
	})}
	c, secret, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "admin", GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{adminapi.Scope}, Audience: []string{api},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.adminID, e.adminSecret = c.ID, secret
	e.adminToken = e.token(t, c.ID, secret, adminapi.Scope)
	return e
}

// token obtains an access token with the client_credentials grant.
func (e *env) token(t *testing.T, id, secret string, scopes ...string) string {
	t.Helper()
	tok, err := e.tokenErr(t, id, secret, scopes...)
	if err != nil {
		t.Fatalf("client_credentials token for %s: %v", id, err)
	}
	return tok
}

func (e *env) tokenErr(t *testing.T, id, secret string, scopes ...string) (string, error) {
	t.Helper()
	cc := &clientcredentials.Config{
		ClientID: id, ClientSecret: secret, Scopes: scopes,
		TokenURL: e.Public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(t.Context())
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends an admin request with the admin token.
func (e *env) do(t *testing.T, method, path string, body any) response {
	t.Helper()
	return e.doWith(t, "Bearer "+e.adminToken, method, path, body)
}

// doWith sends an admin request with the given Authorization header ("" for
// none). body is marshalled to JSON unless it is a string or []byte.
func (e *env) doWith(t *testing.T, authorization, method, path string, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.Admin.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := e.Admin.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// wantError checks a non-OAuth JSON error response.
func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body is not JSON: %s", r.body)
	}
	if len(body) != 2 || body["error"] == nil || body["error_description"] == nil {
		t.Errorf("error body %s, want exactly {\"error\",\"error_description\"}", r.body)
	}
	if code != "" && body["error"] != code {
		t.Errorf("error %v, want %s", body["error"], code)
	}
	if desc, _ := body["error_description"].(string); desc == "" || strings.Contains(desc, "goroutine") || strings.Contains(desc, ".go:") {
		t.Errorf("error_description %q is empty or leaks internals", desc)
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	plain, plainSecret, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "plain", GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{"read"}, Audience: []string{api},
	})
	if err != nil {
		t.Fatal(err)
	}
	plainToken := e.token(t, plain.ID, plainSecret, "read")

	tests := []struct {
		name          string
		authorization string
		status        int
		code          string
		wwwAuth       []string // substrings of WWW-Authenticate
	}{
		{"no token", "", http.StatusUnauthorized, "unauthorized", []string{`Bearer realm=`}},
		{"other scheme", "Basic " + plainSecret, http.StatusUnauthorized, "unauthorized", []string{`Bearer realm=`}},
		{"empty bearer", "Bearer ", http.StatusUnauthorized, "unauthorized", []string{`Bearer realm=`}},
		{"garbage token", "Bearer not.a.token", http.StatusUnauthorized, "unauthorized", []string{`Bearer realm=`, `error="invalid_token"`}},
		{"token without scope admin", "Bearer " + plainToken, http.StatusForbidden, "forbidden", []string{`Bearer realm=`, `error="insufficient_scope"`, `scope="admin"`}},
		{"admin token", "Bearer " + e.adminToken, http.StatusOK, "", nil},
		{"admin token, lower-case scheme", "bearer " + e.adminToken, http.StatusOK, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.doWith(t, tc.authorization, http.MethodGet, "/admin/clients", nil)
			if tc.status == http.StatusOK {
				if r.status != http.StatusOK {
					t.Fatalf("status %d body %s, want 200", r.status, r.body)
				}
				return
			}
			wantError(t, r, tc.status, tc.code)
			got := r.header.Get("WWW-Authenticate")
			for _, want := range tc.wwwAuth {
				if !strings.Contains(got, want) {
					t.Errorf("WWW-Authenticate %q lacks %q", got, want)
				}
			}
		})
	}
}

func TestRevokedAdminTokenIsRejected(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, e.adminID, e.adminSecret, adminapi.Scope)
	if r := e.doWith(t, "Bearer "+tok, http.MethodGet, "/admin/keys", nil); r.status != http.StatusOK {
		t.Fatalf("before revocation: status %d body %s", r.status, r.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.Public.URL+"/oauth2/revoke",
		strings.NewReader(url.Values{"token": {tok}, "token_type_hint": {"access_token"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(e.adminID), url.QueryEscape(e.adminSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
	r := e.doWith(t, "Bearer "+tok, http.MethodGet, "/admin/keys", nil)
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate %q, want invalid_token", got)
	}
	// Other tokens of the same client are unaffected.
	if r := e.do(t, http.MethodGet, "/admin/keys", nil); r.status != http.StatusOK {
		t.Errorf("another admin token after revocation: status %d body %s", r.status, r.body)
	}
}

// rfc7591Fields are the keys of the client representation (README "Endpoints",
// RFC 7591 names, RFC 9449 §5.2's dpop_bound_access_tokens, and
// introspection_allowed).
var rfc7591Fields = []string{"allowed_cors_origins", "audience", "client_id", "client_name", "created_at", "dpop_bound_access_tokens", "grant_types", "introspection_allowed", "mfa_required", "scope", "token_endpoint_auth_method", "token_endpoint_auth_methods_accepted", "updated_at"}

// TestClientAuthMethodsRepresentation checks the client authentication defaults through the
// admin API: a confidential client registered without a method shows RFC
// 7591's default, client_secret_basic, lists both secret methods as
// accepted, and accepts both at the token endpoint; a representation sent
// back unchanged (PUT) keeps it so; an explicit method is the only one
// accepted.
func TestClientAuthMethodsRepresentation(t *testing.T) {
	e := newEnv(t)
	create := func(body map[string]any) map[string]any {
		t.Helper()
		r := e.do(t, http.MethodPost, "/admin/clients", body)
		if r.status != http.StatusCreated {
			t.Fatalf("create %v: status %d body %s", body, r.status, r.body)
		}
		return decode[map[string]any](t, r)
	}
	methods := func(c map[string]any) string {
		m, _ := json.Marshal(c["token_endpoint_auth_methods_accepted"])
		s, _ := c["token_endpoint_auth_method"].(string)
		return s + " " + string(m)
	}
	styles := func(id, secret string) (basicOK, postOK bool) {
		for _, st := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
			cc := &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.Public.URL + "/oauth2/token", AuthStyle: st}
			_, err := cc.Token(t.Context())
			if st == oauth2.AuthStyleInHeader {
				basicOK = err == nil
			} else {
				postOK = err == nil
			}
		}
		return basicOK, postOK
	}

	dflt := create(map[string]any{"client_name": "default", "grant_types": []string{"client_credentials"}, "audience": []string{api}})
	if got, want := methods(dflt), `client_secret_basic ["client_secret_basic","client_secret_post"]`; got != want {
		t.Errorf("default client: %s, want %s", got, want)
	}
	if b, p := styles(dflt["client_id"].(string), dflt["client_secret"].(string)); !b || !p {
		t.Errorf("default client: basic %v, post %v; want both accepted", b, p)
	}
	// GET, then PUT the representation back unchanged.
	id := dflt["client_id"].(string)
	got := decode[map[string]any](t, e.do(t, http.MethodGet, "/admin/clients/"+id, nil))
	for _, k := range []string{"client_id", "created_at", "updated_at"} {
		delete(got, k)
	}
	r := e.do(t, http.MethodPut, "/admin/clients/"+id, got)
	if r.status != http.StatusOK {
		t.Fatalf("put back: status %d body %s", r.status, r.body)
	}
	if got, want := methods(decode[map[string]any](t, r)), `client_secret_basic ["client_secret_basic","client_secret_post"]`; got != want {
		t.Errorf("after PUT of its own representation: %s, want %s", got, want)
	}
	if b, p := styles(id, dflt["client_secret"].(string)); !b || !p {
		t.Errorf("after PUT: basic %v, post %v; want both accepted", b, p)
	}

	for _, m := range []string{"client_secret_basic", "client_secret_post"} {
		c := create(map[string]any{"client_name": m, "token_endpoint_auth_method": m, "grant_types": []string{"client_credentials"}, "audience": []string{api}})
		if got, want := methods(c), m+` ["`+m+`"]`; got != want {
			t.Errorf("explicit %s: %s, want %s", m, got, want)
		}
		b, p := styles(c["client_id"].(string), c["client_secret"].(string))
		if b != (m == "client_secret_basic") || p != (m == "client_secret_post") {
			t.Errorf("explicit %s: basic %v, post %v; want only %s", m, b, p, m)
		}
	}
	pub := create(map[string]any{"client_name": "spa", "token_endpoint_auth_method": "none", "audience": []string{api}})
	if got, want := methods(pub), `none ["none"]`; got != want {
		t.Errorf("public client: %s, want %s", got, want)
	}
	r = e.do(t, http.MethodPost, "/admin/clients", map[string]any{"client_name": "x", "token_endpoint_auth_method": "client_secret_post",
		"token_endpoint_auth_methods_accepted": []string{"client_secret_basic"}})
	if r.status != http.StatusBadRequest {
		t.Errorf("contradicting token_endpoint_auth_methods_accepted: status %d body %s", r.status, r.body)
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestClientsCRUD(t *testing.T) {
	e := newEnv(t)

	// Create a confidential client.
	r := e.do(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_name": "billing", "grant_types": []string{"client_credentials"},
		"scope": "read write", "audience": []string{api},
	})
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d body %s", r.status, r.body)
	}
	created := decode[map[string]any](t, r)
	wantKeys := append([]string{"client_secret", "client_id_issued_at", "client_secret_expires_at"}, rfc7591Fields...)
	slices.Sort(wantKeys)
	if got := keysOf(created); !slices.Equal(got, wantKeys) {
		t.Errorf("create fields %v, want %v", got, wantKeys)
	}
	id, _ := created["client_id"].(string)
	secret, _ := created["client_secret"].(string)
	if id == "" || secret == "" {
		t.Fatalf("create: client_id %q client_secret %q", id, secret)
	}
	if loc := r.header.Get("Location"); loc != "/admin/clients/"+id {
		t.Errorf("Location %q, want /admin/clients/%s", loc, id)
	}
	for name, want := range map[string]any{
		"client_name": "billing", "token_endpoint_auth_method": "client_secret_basic", "scope": "read write",
	} {
		if created[name] != want {
			t.Errorf("%s = %v, want %v", name, created[name], want)
		}
	}
	if g, _ := json.Marshal(created["grant_types"]); string(g) != `["client_credentials"]` {
		t.Errorf("grant_types = %s", g)
	}
	if a, _ := json.Marshal(created["audience"]); string(a) != `["`+api+`"]` {
		t.Errorf("audience = %s", a)
	}
	for _, f := range []string{"created_at", "updated_at"} {
		s, _ := created[f].(string)
		if ts, err := time.Parse(time.RFC3339, s); err != nil || time.Since(ts) > time.Minute {
			t.Errorf("%s = %q, want a recent RFC 3339 time", f, s)
		}
	}
	// The secret works.
	e.token(t, id, secret, "read")

	// A public client gets no secret.
	r = e.do(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_name": "spa", "token_endpoint_auth_method": "none", "audience": []string{api},
	})
	if r.status != http.StatusCreated {
		t.Fatalf("create public: status %d body %s", r.status, r.body)
	}
	pub := decode[map[string]any](t, r)
	if _, ok := pub["client_secret"]; ok {
		t.Errorf("public client has client_secret: %s", r.body)
	}
	if g, _ := json.Marshal(pub["grant_types"]); string(g) != `["password","refresh_token"]` {
		t.Errorf("default grant_types = %s", g)
	}

	// List and get never show a secret.
	r = e.do(t, http.MethodGet, "/admin/clients", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: status %d body %s", r.status, r.body)
	}
	list := decode[[]map[string]any](t, r)
	var ids []string
	for _, c := range list {
		ids = append(ids, c["client_id"].(string))
		if got := keysOf(c); !slices.Equal(got, rfc7591Fields) {
			t.Errorf("list entry fields %v, want %v", got, rfc7591Fields)
		}
	}
	for _, want := range []string{e.adminID, id, pub["client_id"].(string)} {
		if !slices.Contains(ids, want) {
			t.Errorf("list %v lacks %s", ids, want)
		}
	}
	if len(list) != 3 {
		t.Errorf("list has %d clients, want 3", len(list))
	}
	r = e.do(t, http.MethodGet, "/admin/clients/"+id, nil)
	if r.status != http.StatusOK {
		t.Fatalf("get: status %d body %s", r.status, r.body)
	}
	got := decode[map[string]any](t, r)
	if k := keysOf(got); !slices.Equal(k, rfc7591Fields) {
		t.Errorf("get fields %v, want %v", k, rfc7591Fields)
	}
	if got["client_name"] != "billing" {
		t.Errorf("get client_name %v", got["client_name"])
	}

	// Update.
	r = e.do(t, http.MethodPut, "/admin/clients/"+id, map[string]any{
		"client_name": "billing-v2", "token_endpoint_auth_method": "client_secret_post",
		"grant_types": []string{"client_credentials"}, "scope": "read", "audience": []string{api, "https://b.example.test"},
	})
	if r.status != http.StatusOK {
		t.Fatalf("update: status %d body %s", r.status, r.body)
	}
	upd := decode[map[string]any](t, r)
	if upd["client_name"] != "billing-v2" || upd["scope"] != "read" || upd["token_endpoint_auth_method"] != "client_secret_post" {
		t.Errorf("update result %s", r.body)
	}
	if _, ok := upd["client_secret"]; ok {
		t.Errorf("update shows client_secret: %s", r.body)
	}
	if r := e.do(t, http.MethodGet, "/admin/clients/"+id, nil); decode[map[string]any](t, r)["client_name"] != "billing-v2" {
		t.Errorf("get after update: %s", r.body)
	}
	// The update took effect at the token endpoint: basic auth is now refused.
	if _, err := e.tokenErr(t, id, secret, "read"); err == nil {
		t.Error("client_secret_basic still accepted after switching to client_secret_post")
	}
	cc := &clientcredentials.Config{ClientID: id, ClientSecret: secret, Scopes: []string{"read"},
		TokenURL: e.Public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}
	if _, err := cc.Token(t.Context()); err != nil {
		t.Errorf("client_secret_post after update: %v", err)
	}
	// Switch back to basic for the secret rotation below.
	r = e.do(t, http.MethodPut, "/admin/clients/"+id, map[string]any{
		"client_name": "billing-v2", "grant_types": []string{"client_credentials"}, "scope": "read", "audience": []string{api},
	})
	if r.status != http.StatusOK {
		t.Fatalf("update back: status %d body %s", r.status, r.body)
	}

	// Rotate the secret: the new one works, the old one fails.
	r = e.do(t, http.MethodPost, "/admin/clients/"+id+"/secret", nil)
	if r.status != http.StatusOK {
		t.Fatalf("rotate secret: status %d body %s", r.status, r.body)
	}
	rot := decode[map[string]any](t, r)
	newSecret, _ := rot["client_secret"].(string)
	if newSecret == "" || newSecret == secret || rot["client_id"] != id {
		t.Fatalf("rotate secret result %s", r.body)
	}
	e.token(t, id, newSecret, "read")
	if _, err := e.tokenErr(t, id, secret, "read"); err == nil {
		t.Error("old secret still works after rotation")
	} else if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "invalid_client" {
		t.Errorf("old secret: %v, want invalid_client", err)
	}
	// A public client has no secret to rotate.
	wantError(t, e.do(t, http.MethodPost, "/admin/clients/"+pub["client_id"].(string)+"/secret", nil), http.StatusBadRequest, "invalid_request")

	// Delete, then it is gone.
	r = e.do(t, http.MethodDelete, "/admin/clients/"+id, nil)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: status %d body %q, want 204 and no body", r.status, r.body)
	}
	wantError(t, e.do(t, http.MethodGet, "/admin/clients/"+id, nil), http.StatusNotFound, "not_found")
	wantError(t, e.do(t, http.MethodDelete, "/admin/clients/"+id, nil), http.StatusNotFound, "not_found")
	wantError(t, e.do(t, http.MethodPost, "/admin/clients/"+id+"/secret", nil), http.StatusNotFound, "not_found")
	wantError(t, e.do(t, http.MethodPut, "/admin/clients/"+id, map[string]any{"client_name": "x"}), http.StatusNotFound, "not_found")
	if _, err := e.tokenErr(t, id, newSecret, "read"); err == nil {
		t.Error("deleted client still gets tokens")
	}
}

// introspect calls the public introspection endpoint as client id and
// returns the status and the decoded body.
func (e *env) introspect(t *testing.T, id, secret, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.Public.URL+"/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("introspection response: %v", err)
	}
	return resp.StatusCode, body
}

// TestClientIntrospectionPermission: introspection_allowed is created,
// shown, replaced by PUT (absent means false, RFC 7592 §2.2) and takes
// effect at the introspection endpoint at once; a public client can never
// hold it.
func TestClientIntrospectionPermission(t *testing.T) {
	e := newEnv(t)
	r := e.do(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_name": "rs", "grant_types": []string{"client_credentials"}, "audience": []string{api}, "introspection_allowed": true,
	})
	if r.status != http.StatusCreated || decode[map[string]any](t, r)["introspection_allowed"] != true {
		t.Fatalf("create: status %d body %s", r.status, r.body)
	}
	rs := decode[map[string]any](t, r)
	id, secret := rs["client_id"].(string), rs["client_secret"].(string)
	if got := decode[map[string]any](t, e.do(t, http.MethodGet, "/admin/clients/"+id, nil)); got["introspection_allowed"] != true {
		t.Errorf("get: %v", got)
	}
	if got := decode[map[string]any](t, e.do(t, http.MethodGet, "/admin/clients/"+e.adminID, nil)); got["introspection_allowed"] != false {
		t.Errorf("default introspection_allowed: %v", got)
	}
	if status, body := e.introspect(t, id, secret, e.adminToken); status != http.StatusOK || body["active"] != true {
		t.Fatalf("permitted client: %d %v", status, body)
	}
	if status, body := e.introspect(t, e.adminID, e.adminSecret, e.adminToken); status != http.StatusForbidden || body["error"] != "unauthorized_client" {
		t.Errorf("client without the permission: %d %v", status, body)
	}

	put := map[string]any{"client_name": "rs", "grant_types": []string{"client_credentials"}, "audience": []string{api}}
	r = e.do(t, http.MethodPut, "/admin/clients/"+id, put)
	if r.status != http.StatusOK || decode[map[string]any](t, r)["introspection_allowed"] != false {
		t.Fatalf("PUT without introspection_allowed: status %d body %s", r.status, r.body)
	}
	if status, body := e.introspect(t, id, secret, e.adminToken); status != http.StatusForbidden || body["error"] != "unauthorized_client" {
		t.Errorf("after withdrawing the permission: %d %v", status, body)
	}
	put["introspection_allowed"] = true
	if r = e.do(t, http.MethodPut, "/admin/clients/"+id, put); r.status != http.StatusOK || decode[map[string]any](t, r)["introspection_allowed"] != true {
		t.Fatalf("PUT with introspection_allowed: status %d body %s", r.status, r.body)
	}
	if status, body := e.introspect(t, id, secret, e.adminToken); status != http.StatusOK || body["active"] != true {
		t.Errorf("after granting the permission again: %d %v", status, body)
	}

	// A public client can never be allowed.
	wantError(t, e.do(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_name": "spa", "token_endpoint_auth_method": "none", "introspection_allowed": true,
	}), http.StatusBadRequest, "invalid_request")
	pub, _, err := e.Clients.Create(t.Context(), clients.Spec{Name: "spa", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	r = e.do(t, http.MethodPut, "/admin/clients/"+pub.ID, map[string]any{
		"client_name": "spa", "token_endpoint_auth_method": "none", "introspection_allowed": true,
	})
	wantError(t, r, http.StatusBadRequest, "invalid_request")
	if desc := decode[map[string]string](t, r)["error_description"]; !strings.Contains(desc, "introspection_allowed") {
		t.Errorf("error_description %q does not name introspection_allowed", desc)
	}
	if got := decode[map[string]any](t, e.do(t, http.MethodGet, "/admin/clients/"+pub.ID, nil)); got["introspection_allowed"] != false {
		t.Errorf("public client after a refused update: %v", got)
	}
	wantError(t, e.do(t, http.MethodPost, "/admin/clients", `{"client_name":"x","introspection_allowed":"yes"}`), http.StatusBadRequest, "invalid_request")
}

// TestClientDPoPBoundAccessTokens: dpop_bound_access_tokens (RFC 9449
// §5.2) is created, shown by GET and in the list (false by default),
// replaced by PUT (absent means false, RFC 7592 §2.2, as for
// introspection_allowed), and reaches the client as the token endpoint sees
// it (through the client cache, DPoPBoundAccessTokens) at once; a value
// that is not a boolean is refused with a fixed message and changes
// nothing.
func TestClientDPoPBoundAccessTokens(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"client_name": "dpop", "grant_types": []string{"client_credentials"}, "audience": []string{api}, "dpop_bound_access_tokens": true}
	r := e.do(t, http.MethodPost, "/admin/clients", body)
	if r.status != http.StatusCreated || decode[map[string]any](t, r)["dpop_bound_access_tokens"] != true {
		t.Fatalf("create: status %d body %s", r.status, r.body)
	}
	id := decode[map[string]any](t, r)["client_id"].(string)
	lookups := e.ClientCache.TokenStore(e.Store)
	bound := func(t *testing.T, want bool) {
		t.Helper()
		if got := decode[map[string]any](t, e.do(t, http.MethodGet, "/admin/clients/"+id, nil)); got["dpop_bound_access_tokens"] != want {
			t.Fatalf("GET: dpop_bound_access_tokens %v, want %v", got["dpop_bound_access_tokens"], want)
		}
		list := decode[[]map[string]any](t, e.do(t, http.MethodGet, "/admin/clients", nil))
		for _, c := range list {
			if w := want && c["client_id"] == id; c["dpop_bound_access_tokens"] != w {
				t.Fatalf("list: client %v: dpop_bound_access_tokens %v, want %v", c["client_id"], c["dpop_bound_access_tokens"], w)
			}
		}
		fc, err := lookups.GetClient(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		dc, ok := fc.(interface{ DPoPBoundAccessTokens() bool })
		if !ok {
			t.Fatalf("the token endpoint's client %T has no DPoPBoundAccessTokens method", fc)
		}
		if dc.DPoPBoundAccessTokens() != want {
			t.Fatalf("the token endpoint's client: DPoPBoundAccessTokens() = %v, want %v", !want, want)
		}
	}
	bound(t, true)

	delete(body, "dpop_bound_access_tokens")
	if r = e.do(t, http.MethodPut, "/admin/clients/"+id, body); r.status != http.StatusOK || decode[map[string]any](t, r)["dpop_bound_access_tokens"] != false {
		t.Fatalf("PUT without dpop_bound_access_tokens: status %d body %s", r.status, r.body)
	}
	bound(t, false)
	body["dpop_bound_access_tokens"] = true
	if r = e.do(t, http.MethodPut, "/admin/clients/"+id, body); r.status != http.StatusOK || decode[map[string]any](t, r)["dpop_bound_access_tokens"] != true {
		t.Fatalf("PUT with dpop_bound_access_tokens: status %d body %s", r.status, r.body)
	}
	bound(t, true)
	body["dpop_bound_access_tokens"] = false
	if r = e.do(t, http.MethodPut, "/admin/clients/"+id, body); r.status != http.StatusOK || decode[map[string]any](t, r)["dpop_bound_access_tokens"] != false {
		t.Fatalf("PUT with dpop_bound_access_tokens false: status %d body %s", r.status, r.body)
	}
	bound(t, false)

	// Not a boolean: refused, without repeating the value.
	const wantDesc = `malformed JSON body: field "dpop_bound_access_tokens" has the wrong type`
	for _, v := range []string{`"yes"`, `"true"`, `1`, `[true]`} {
		for _, req := range []struct{ method, path, body string }{
			{http.MethodPost, "/admin/clients", `{"client_name":"x","dpop_bound_access_tokens":` + v + `}`},
			{http.MethodPut, "/admin/clients/" + id, `{"client_name":"dpop","grant_types":["client_credentials"],"dpop_bound_access_tokens":` + v + `}`},
		} {
			r := e.do(t, req.method, req.path, req.body)
			wantError(t, r, http.StatusBadRequest, "invalid_request")
			if desc := decode[map[string]string](t, r)["error_description"]; desc != wantDesc {
				t.Errorf("%s %s with %s: error_description %q, want %q", req.method, req.path, v, desc, wantDesc)
			}
		}
	}
	if list := decode[[]map[string]any](t, e.do(t, http.MethodGet, "/admin/clients", nil)); len(list) != 2 {
		t.Errorf("%d clients after refused creations, want 2", len(list))
	}
	bound(t, false)
}

// TestClientCORSOrigins: allowed_cors_origins in the admin API, normalised,
// replaced by PUT, refused with a fixed text when not an origin.
func TestClientCORSOrigins(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"client_name": "spa", "token_endpoint_auth_method": "none", "audience": []string{api},
		"allowed_cors_origins": []string{"HTTPS://SPA.example:443/", "http://localhost:5173", "https://spa.example"}}
	r := e.do(t, http.MethodPost, "/admin/clients", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	c := decode[map[string]any](t, r)
	want := `["http://localhost:5173","https://spa.example"]`
	if got, _ := json.Marshal(c["allowed_cors_origins"]); string(got) != want {
		t.Fatalf("allowed_cors_origins = %s, want %s", got, want)
	}
	id := c["client_id"].(string)
	if got, _ := json.Marshal(decode[map[string]any](t, e.do(t, http.MethodGet, "/admin/clients/"+id, nil))["allowed_cors_origins"]); string(got) != want {
		t.Fatalf("get: allowed_cors_origins = %s", got)
	}
	delete(body, "allowed_cors_origins")
	r = e.do(t, http.MethodPut, "/admin/clients/"+id, body)
	if got, _ := json.Marshal(decode[map[string]any](t, r)["allowed_cors_origins"]); r.status != http.StatusOK || string(got) != `[]` {
		t.Fatalf("PUT without allowed_cors_origins: %d %s", r.status, r.body)
	}
	if got, _ := json.Marshal(decode[map[string]any](t, e.do(t, http.MethodGet, "/admin/clients/"+e.adminID, nil))["allowed_cors_origins"]); string(got) != `[]` {
		t.Fatalf("default allowed_cors_origins = %s", got)
	}
	for _, o := range []string{"*", "null", "https://evil.example/path", "https://evil.example?x"} {
		body["allowed_cors_origins"] = []string{o}
		r := e.do(t, http.MethodPost, "/admin/clients", body)
		wantError(t, r, http.StatusBadRequest, "invalid_request")
		desc := decode[map[string]string](t, r)["error_description"]
		if !strings.Contains(desc, "allowed_cors_origins") || strings.Contains(desc, "evil") {
			t.Fatalf("origin %q: error_description %q", o, desc)
		}
	}
}

func TestClientRequestErrors(t *testing.T) {
	e := newEnv(t)
	pub, _, err := e.Clients.Create(t.Context(), clients.Spec{Name: "spa", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
		desc   string // substring of error_description
	}{
		{"missing name", "POST", "/admin/clients", map[string]any{"grant_types": []string{"password"}}, 400, "invalid_request", "client_name"},
		{"unsupported grant", "POST", "/admin/clients", map[string]any{"client_name": "x", "grant_types": []string{"implicit"}}, 400, "invalid_request", "implicit"},
		{"unsupported auth method", "POST", "/admin/clients", map[string]any{"client_name": "x", "token_endpoint_auth_method": "private_key_jwt"}, 400, "invalid_request", "private_key_jwt"},
		{"public client_credentials", "POST", "/admin/clients", map[string]any{"client_name": "x", "token_endpoint_auth_method": "none", "grant_types": []string{"client_credentials"}}, 400, "invalid_request", "client_credentials"},
		{"bad scope", "POST", "/admin/clients", map[string]any{"client_name": "x", "scope": `a"b`}, 400, "invalid_request", "scope"},
		{"every problem reported", "POST", "/admin/clients", map[string]any{"grant_types": []string{"implicit"}}, 400, "invalid_request", "; "},
		{"unsupported metadata ignored, invalid value refused", "POST", "/admin/clients", `{"client_name":"x","redirect_uris":["https://x"],"grant_types":["implicit"]}`, 400, "invalid_request", "implicit"},
		{"wrong type", "POST", "/admin/clients", `{"client_name":42}`, 400, "invalid_request", "client_name"},
		{"malformed JSON", "POST", "/admin/clients", `{"client_name":`, 400, "invalid_request", ""},
		{"empty body", "POST", "/admin/clients", "", 400, "invalid_request", ""},
		{"trailing data", "POST", "/admin/clients", `{"client_name":"x"} {}`, 400, "invalid_request", ""},
		{"body too large", "POST", "/admin/clients", `{"client_name":"` + strings.Repeat("x", maxBytes) + `"}`, 413, "request_too_large", ""},
		{"update too large", "PUT", "/admin/clients/" + pub.ID, `{"client_name":"` + strings.Repeat("x", maxBytes) + `"}`, 413, "request_too_large", ""},
		{"public to confidential", "PUT", "/admin/clients/" + pub.ID, map[string]any{"client_name": "spa", "token_endpoint_auth_method": "client_secret_basic"}, 400, "invalid_request", "public"},
		{"update unknown field", "PUT", "/admin/clients/" + pub.ID, `{"client_name":"spa","client_secret":"x"}`, 400, "invalid_request", ""},
		{"unknown client", "GET", "/admin/clients/does-not-exist", nil, 404, "not_found", ""},
		{"unknown route", "GET", "/admin/nope", nil, 404, "not_found", ""},
		{"unknown nested route", "GET", "/admin/clients/" + pub.ID + "/tokens", nil, 404, "not_found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.body)
			wantError(t, r, tc.status, tc.code)
			if tc.desc != "" && !strings.Contains(decode[map[string]string](t, r)["error_description"], tc.desc) {
				t.Errorf("error_description %s lacks %q", r.body, tc.desc)
			}
		})
	}
	// Nothing was created by the failed requests.
	if list := decode[[]map[string]any](t, e.do(t, http.MethodGet, "/admin/clients", nil)); len(list) != 2 {
		t.Errorf("%d clients after failed requests, want 2", len(list))
	}
}

// decodeStrict decodes r's body into T, failing the test on a member T
// does not have: a representation gains no field unnoticed.
func decodeStrict[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// storedUser is the representation of the user as stored, built field by
// field: a field added to adminapi.UserJSON makes every cmp.Diff against
// an answer fail until it is added here.
func (e *env) storedUser(t *testing.T, id string) adminapi.UserJSON {
	t.Helper()
	u, err := e.Users.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get user %s: %v", id, err)
	}
	return adminapi.UserJSON{ID: u.ID, Username: u.Username, Roles: u.Roles, Disabled: u.Disabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func TestUsers(t *testing.T) {
	e := newEnv(t)

	r := e.do(t, http.MethodPost, "/admin/users", map[string]any{"username": "Alice", "password": userPassword, "roles": []string{"user", "admin", "user"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d body %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), "password") {
		t.Errorf("create response leaks the password or its hash: %s", r.body)
	}
	alice := decodeStrict[adminapi.UserJSON](t, r)
	if alice.ID == "" {
		t.Fatalf("created user without an id: %s", r.body)
	}
	stored := e.storedUser(t, alice.ID)
	want := adminapi.UserJSON{ID: alice.ID, Username: "Alice", Roles: []string{"admin", "user"}, CreatedAt: stored.CreatedAt, UpdatedAt: stored.UpdatedAt}
	if diff := cmp.Diff(want, alice); diff != "" {
		t.Errorf("created user (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(stored, alice); diff != "" {
		t.Errorf("created user differs from the stored one (-stored +answer):\n%s", diff)
	}
	if loc := r.header.Get("Location"); loc != "/admin/users/"+alice.ID {
		t.Errorf("Location %q", loc)
	}
	r = e.do(t, http.MethodPost, "/admin/users", map[string]any{"username": "bob", "password": userPassword})
	if r.status != http.StatusCreated {
		t.Fatalf("create bob: status %d body %s", r.status, r.body)
	}
	bob := decodeStrict[adminapi.UserJSON](t, r)
	// Roles is [] (not null) when none were given.
	if diff := cmp.Diff(e.storedUser(t, bob.ID), bob); diff != "" || bob.Roles == nil || len(bob.Roles) != 0 {
		t.Errorf("bob %+v, want roles [] and the stored user (-stored +answer):\n%s", bob, diff)
	}

	// Errors on create.
	errTests := []struct {
		name   string
		body   any
		status int
		code   string
		desc   string
	}{
		{"duplicate, other case", map[string]any{"username": "ALICE", "password": userPassword}, 409, "conflict", ""},
		{"weak password", map[string]any{"username": "carol", "password": "short"}, 400, "invalid_request", "at least 12"},
		{"bad username", map[string]any{"username": "-x", "password": userPassword}, 400, "invalid_request", "username"},
		{"bad role", map[string]any{"username": "carol", "password": userPassword, "roles": []string{"has space"}}, 400, "invalid_request", "role"},
		{"unknown field", `{"username":"carol","password":"purple otter lamp 42","admin":true}`, 400, "invalid_request", "unknown field"},
		{"too large", `{"username":"carol","password":"` + strings.Repeat("p", maxBytes) + `"}`, 413, "request_too_large", ""},
	}
	for _, tc := range errTests {
		t.Run("create "+tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/admin/users", tc.body)
			wantError(t, r, tc.status, tc.code)
			if tc.desc != "" && !strings.Contains(decode[map[string]string](t, r)["error_description"], tc.desc) {
				t.Errorf("error_description %s lacks %q", r.body, tc.desc)
			}
		})
	}

	// List, ordered by username.
	r = e.do(t, http.MethodGet, "/admin/users", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: status %d body %s", r.status, r.body)
	}
	wantList := []adminapi.UserJSON{e.storedUser(t, alice.ID), e.storedUser(t, bob.ID)}
	if diff := cmp.Diff(wantList, decodeStrict[[]adminapi.UserJSON](t, r)); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if strings.Contains(string(r.body), "argon2") {
		t.Errorf("list leaks hashes: %s", r.body)
	}

	// Get by id; a username is never taken for an ID.
	r = e.do(t, http.MethodGet, "/admin/users/"+alice.ID, nil)
	if r.status != http.StatusOK {
		t.Fatalf("get %s: status %d body %s", alice.ID, r.status, r.body)
	}
	if diff := cmp.Diff(e.storedUser(t, alice.ID), decodeStrict[adminapi.UserJSON](t, r)); diff != "" {
		t.Errorf("get %s (-stored +answer):\n%s", alice.ID, diff)
	}
	for _, key := range []string{"Alice", "alice", "nobody"} {
		wantError(t, e.do(t, http.MethodGet, "/admin/users/"+key, nil), http.StatusNotFound, "not_found")
		wantError(t, e.do(t, http.MethodPatch, "/admin/users/"+key, map[string]any{"disabled": true}), http.StatusNotFound, "not_found")
		wantError(t, e.do(t, http.MethodDelete, "/admin/users/"+key, nil), http.StatusNotFound, "not_found")
	}

	// patch sends a PATCH of alice and checks that the answer is 200 with
	// the user as now stored, whole.
	patch := func(what string, body any) adminapi.UserJSON {
		t.Helper()
		r := e.do(t, http.MethodPatch, "/admin/users/"+alice.ID, body)
		if r.status != http.StatusOK {
			t.Fatalf("%s: status %d body %s", what, r.status, r.body)
		}
		got := decodeStrict[adminapi.UserJSON](t, r)
		if diff := cmp.Diff(e.storedUser(t, alice.ID), got); diff != "" {
			t.Errorf("%s: answer differs from the stored user (-stored +answer):\n%s", what, diff)
		}
		return got
	}
	// PATCH roles.
	if u := patch("patch roles", map[string]any{"roles": []string{"ops"}}); !slices.Equal(u.Roles, []string{"ops"}) {
		t.Errorf("patch roles: %+v", u)
	}
	// PATCH with an empty object changes nothing but updated_at.
	before := e.storedUser(t, alice.ID)
	after := patch("empty patch", map[string]any{})
	if diff := cmp.Diff(before, after, cmpopts.IgnoreFields(adminapi.UserJSON{}, "UpdatedAt")); diff != "" {
		t.Errorf("empty patch changed (-before +after):\n%s", diff)
	}
	// PATCH disabled: Authenticate then fails with the right password.
	if u := patch("patch disabled", map[string]any{"disabled": true}); !u.Disabled {
		t.Errorf("patch disabled: %+v", u)
	}
	if _, err := e.Users.Authenticate(t.Context(), "alice", userPassword, "192.0.2.1"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("disabled user authenticates: %v", err)
	}
	if u := patch("patch enabled", map[string]any{"disabled": false}); u.Disabled {
		t.Errorf("patch enabled: %+v", u)
	}
	if _, err := e.Users.Authenticate(t.Context(), "alice", userPassword, "192.0.2.1"); err != nil {
		t.Errorf("re-enabled user: %v", err)
	}

	// PATCH unlock: lock alice with wrong passwords (MaxFailures 3).
	for range 3 {
		_, _ = e.Users.Authenticate(t.Context(), "alice", "wrong password here", "192.0.2.1")
	}
	if _, err := e.Users.Authenticate(t.Context(), "alice", userPassword, "192.0.2.1"); !errors.Is(err, identity.ErrThrottled) {
		t.Fatalf("after 3 failures: %v, want throttled", err)
	}
	r = e.do(t, http.MethodPatch, "/admin/users/"+alice.ID, map[string]any{"unlock": true})
	if r.status != http.StatusOK {
		t.Errorf("patch unlock: status %d body %s", r.status, r.body)
	}
	if _, err := e.Users.Authenticate(t.Context(), "alice", userPassword, "192.0.2.1"); err != nil {
		t.Errorf("after unlock: %v", err)
	}

	// PATCH password: policy applies, then the new password works and the old one does not.
	wantError(t, e.do(t, http.MethodPatch, "/admin/users/"+alice.ID, map[string]any{"password": "alice"}), http.StatusBadRequest, "invalid_request")
	wantError(t, e.do(t, http.MethodPatch, "/admin/users/"+alice.ID, map[string]any{"roles": []string{""}}), http.StatusBadRequest, "invalid_request")
	wantError(t, e.do(t, http.MethodPatch, "/admin/users/"+alice.ID, `{"locked":false}`), http.StatusBadRequest, "invalid_request")
	wantError(t, e.do(t, http.MethodPatch, "/admin/users/nobody", map[string]any{"disabled": true}), http.StatusNotFound, "not_found")
	const newPassword = "green walrus piano 7"
	r = e.do(t, http.MethodPatch, "/admin/users/"+alice.ID, map[string]any{"password": newPassword})
	if r.status != http.StatusOK {
		t.Fatalf("patch password: status %d body %s", r.status, r.body)
	}
	if _, err := e.Users.Authenticate(t.Context(), "alice", newPassword, "192.0.2.1"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := e.Users.Authenticate(t.Context(), "alice", userPassword, "192.0.2.1"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("old password after change: %v", err)
	}

	// DELETE by ID, then 404.
	r = e.do(t, http.MethodDelete, "/admin/users/"+alice.ID, nil)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: status %d body %q", r.status, r.body)
	}
	wantError(t, e.do(t, http.MethodGet, "/admin/users/"+alice.ID, nil), http.StatusNotFound, "not_found")
	wantError(t, e.do(t, http.MethodDelete, "/admin/users/"+alice.ID, nil), http.StatusNotFound, "not_found")
	list := decodeStrict[[]adminapi.UserJSON](t, e.do(t, http.MethodGet, "/admin/users", nil))
	if diff := cmp.Diff([]adminapi.UserJSON{e.storedUser(t, bob.ID)}, list); diff != "" {
		t.Errorf("list after delete (-want +got):\n%s", diff)
	}
}

type keyStatus struct {
	KID         string    `json:"kid"`
	State       string    `json:"state"`
	Generation  int64     `json:"generation"`
	ActivatesAt time.Time `json:"activates_at"`
}

type rotateResult struct {
	KID         string    `json:"kid"`
	ActivatesAt time.Time `json:"activates_at"`
}

func TestKeys(t *testing.T) {
	e := newEnv(t)
	listKeys := func(t *testing.T) []keyStatus {
		t.Helper()
		r := e.do(t, http.MethodGet, "/admin/keys", nil)
		if r.status != http.StatusOK {
			t.Fatalf("list keys: status %d body %s", r.status, r.body)
		}
		if strings.Contains(strings.ToLower(string(r.body)), `"d"`) || strings.Contains(string(r.body), "sealed") {
			t.Errorf("key listing leaks private material: %s", r.body)
		}
		return decode[[]keyStatus](t, r)
	}
	states := func(ks []keyStatus) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.State)
		}
		return out
	}

	initial := listKeys(t)
	if len(initial) != 1 || initial[0].State != "active" || initial[0].KID == "" {
		t.Fatalf("initial keys %+v, want one active key", initial)
	}

	// Pre-published rotation: published now, signing after the window.
	before := time.Now()
	r := e.do(t, http.MethodPost, "/admin/keys/rotate?prepublish=true", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("rotate: status %d body %s", r.status, r.body)
	}
	rot := decode[rotateResult](t, r)
	if rot.KID == "" || rot.KID == initial[0].KID {
		t.Errorf("rotate kid %q", rot.KID)
	}
	if want := before.Add(prepublication); rot.ActivatesAt.Before(want.Add(-2*time.Second)) || rot.ActivatesAt.After(want.Add(2*time.Second)) {
		t.Errorf("activates_at %v, want about %v", rot.ActivatesAt, want)
	}
	ks := listKeys(t)
	if got := states(ks); !slices.Equal(got, []string{"active", "published"}) || ks[1].KID != rot.KID {
		t.Errorf("after rotate: %+v", ks)
	}

	// Default rotation: the new key signs at once.
	r = e.do(t, http.MethodPost, "/admin/keys/rotate", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("rotate immediate: status %d body %s", r.status, r.body)
	}
	imm := decode[rotateResult](t, r)
	if d := time.Since(imm.ActivatesAt); d < -time.Second || d > 5*time.Second {
		t.Errorf("immediate activates_at %v, want about now", imm.ActivatesAt)
	}
	ks = listKeys(t)
	if len(ks) != 3 || ks[2].KID != imm.KID || ks[2].State != "active" || ks[0].State != "retired" {
		t.Errorf("after immediate rotate: %+v", ks)
	}
	if k, err := e.Keys.SigningKey(); err != nil || k.ID != imm.KID {
		t.Errorf("signing key after immediate rotation: %v %v, want %s", k, err, imm.KID)
	}

	r = e.do(t, http.MethodPost, "/admin/keys/rotate?prepublish=false", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("rotate prepublish=false: status %d body %s", r.status, r.body)
	}
	if got := decode[rotateResult](t, r).ActivatesAt; time.Since(got) > 5*time.Second || time.Until(got) > time.Second {
		t.Errorf("prepublish=false activates_at %v, want about now", got)
	}

	for _, q := range []string{"bogus", "1", "TRUE"} {
		wantError(t, e.do(t, http.MethodPost, "/admin/keys/rotate?prepublish="+q, nil), http.StatusBadRequest, "invalid_request")
	}
	if n := len(listKeys(t)); n != 4 {
		t.Errorf("%d keys after rejected rotations, want 4", n)
	}
}

// TestUserTokens: a user's access token with scope admin is accepted only
// while the user holds role admin and is enabled; refresh tokens are never
// bearer credentials.
func TestUserTokens(t *testing.T) {
	e := newEnv(t)
	ui, _, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "ui", Public: true, Scopes: []string{adminapi.Scope, "read"}, Audience: []string{api},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, u := range []struct {
		name  string
		roles []string
	}{{"mallory", nil}, {"root", []string{adminapi.Role}}} {
		created, err := e.Users.Signup(t.Context(), u.name, "purple otter lamp 42", u.roles)
		if err != nil {
			t.Fatal(err)
		}
		ids[u.name] = created.ID
	}
	conf := &oauth2.Config{ClientID: ui.ID, Scopes: []string{adminapi.Scope},
		Endpoint: oauth2.Endpoint{TokenURL: e.Public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	login := func(name string) *oauth2.Token {
		tok, err := conf.PasswordCredentialsToken(t.Context(), name, "purple otter lamp 42")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mallory, root := login("mallory"), login("root")
	// RFC 8707: asked for the API only, the token is audience-restricted
	// to it, scope admin and role admin notwithstanding.
	apiOnly, err := conf.PasswordCredentialsToken(
		context.WithValue(t.Context(), oauth2.HTTPClient, resourceClient(api)), "root", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	adminOnly, err := conf.PasswordCredentialsToken(
		context.WithValue(t.Context(), oauth2.HTTPClient, resourceClient(e.AdminAudience)), "root", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"user without role admin", mallory.AccessToken, http.StatusForbidden},
		{"user with role admin", root.AccessToken, http.StatusOK},
		{"RFC 9068 §4 role admin, scope admin, aud without the admin API", apiOnly.AccessToken, http.StatusUnauthorized},
		{"RFC 8707 §2 resource = the admin API's audience", adminOnly.AccessToken, http.StatusOK},
		{"refresh token of a user with role admin", root.RefreshToken, http.StatusUnauthorized},
		{"refresh token of a user without it", mallory.RefreshToken, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.doWith(t, "Bearer "+tc.token, http.MethodGet, "/admin/clients", nil); r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
		})
	}

	// Withdrawing role admin takes effect on the token already issued: the
	// admin API checks the user on every request (403), and giving the
	// role back restores it.
	get := func() response {
		return e.doWith(t, "Bearer "+root.AccessToken, http.MethodGet, "/admin/clients", nil)
	}
	setRoles := func(roles ...string) {
		t.Helper()
		if _, err := e.Users.Update(t.Context(), ids["root"], identity.Change{Roles: &roles}); err != nil {
			t.Fatal(err)
		}
	}
	setRoles("user")
	r := get()
	wantError(t, r, http.StatusForbidden, "forbidden")
	if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) {
		t.Errorf("role admin withdrawn: WWW-Authenticate %q, want insufficient_scope", got)
	}
	setRoles(adminapi.Role)
	if r := get(); r.status != http.StatusOK {
		t.Fatalf("role admin given back: status %d: %s", r.status, r.body)
	}
	// Disabling the administrator takes effect on the token already issued:
	// the server revokes the user's grants with the change (identity
	// Sessions), so the token is no longer valid (401 invalid_token).
	yes := true
	if _, err := e.Users.Update(t.Context(), ids["root"], identity.Change{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	r = get()
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("disabled admin user: WWW-Authenticate %q, want invalid_token", got)
	}
}

// resourceClient returns an HTTP client that adds resource=aud (RFC 8707)
// to every form it posts, which x/oauth2 has no option for.
func resourceClient(aud string) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		b = append(b, "&resource="+url.QueryEscape(aud)...)
		r = r.Clone(r.Context())
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		return http.DefaultTransport.RoundTrip(r)
	})}
}

// claimsOf decodes a JWT's claims without checking it.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestAdminTokenAudience: the admin API is a resource server with its own
// audience; every token it accepts carries it (RFC 9068 §2.2, §4).
func TestAdminTokenAudience(t *testing.T) {
	e := newEnv(t)
	// The README's admin client: scope admin, no audience registered.
	c, secret, err := e.Clients.Create(t.Context(), clients.Spec{
		Name: "readme-admin", GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{adminapi.Scope},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, c.ID, secret, adminapi.Scope)
	if aud, _ := json.Marshal(claimsOf(t, tok)["aud"]); string(aud) != `["`+e.AdminAudience+`"]` {
		t.Errorf("RFC 9068 §2.2 aud of the README admin client's token = %s, want [%q]", aud, e.AdminAudience)
	}
	if r := e.doWith(t, "Bearer "+tok, http.MethodGet, "/admin/users", nil); r.status != http.StatusOK {
		t.Fatalf("README admin client: status %d: %s", r.status, r.body)
	}
}

// TestBodylessRoutes: routes that take no body still refuse an oversized
// one before acting, and a wrong method on a known route is a JSON 405.
func TestBodylessRoutes(t *testing.T) {
	e := newEnv(t)
	before, err := e.Keys.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", maxBytes+1)
	for _, path := range []string{"/admin/keys/rotate", "/admin/clients/" + e.adminID + "/secret"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.Admin.URL+path, strings.NewReader(big))
		req.Header.Set("Authorization", "Bearer "+e.adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with an oversized body: %d, want 413", path, resp.StatusCode)
		}
	}
	after, _ := e.Keys.Status(t.Context())
	if len(after) != len(before) {
		t.Errorf("an oversized request rotated the key")
	}
	if _, err := e.tokenErr(t, e.adminID, e.adminSecret, adminapi.Scope); err != nil {
		t.Errorf("an oversized request rotated the client secret: %v", err)
	}
	r := e.do(t, http.MethodPatch, "/admin/clients", nil)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") == "" {
		t.Fatalf("PATCH /admin/clients: %d Allow=%q %s", r.status, r.header.Get("Allow"), r.body)
	}
	wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
}
