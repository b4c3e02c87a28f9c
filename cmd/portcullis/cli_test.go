package main

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // driver "sqlite", to age a database

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// cliEnv is the environment of in-process CLI runs: a fresh SQLite file
// and cheap argon2 parameters (hashing cost is tested in identity).
type cliEnv struct {
	dsn     string
	environ []string
}

func newCLIEnv(t *testing.T, extra ...string) *cliEnv {
	t.Helper()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "p.db")
	return &cliEnv{dsn: dsn, environ: append([]string{
		"PORTCULLIS_DSN=" + dsn,
		"PORTCULLIS_ARGON2_MEMORY_KIB=64",
		"PORTCULLIS_ARGON2_ITERATIONS=1",
	}, extra...)}
}

// migrated runs `portcullis migrate` in e, which other commands require,
// and returns e.
func (e *cliEnv) migrated(t *testing.T) *cliEnv {
	t.Helper()
	e.ok(t, "", "migrate")
	return e
}

// with returns a copy of the environment with extra variables first (the
// first of duplicated variables counts).
func (e *cliEnv) with(extra ...string) *cliEnv {
	return &cliEnv{dsn: e.dsn, environ: append(slices.Clone(extra), e.environ...)}
}

type cliResult struct {
	stdout, stderr string
	err            error
}

// run calls the testable main in-process.
func (e *cliEnv) run(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, e.environ, strings.NewReader(stdin), &stdout, &stderr)
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// ok runs a command that must succeed.
func (e *cliEnv) ok(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	r := e.run(t, stdin, args...)
	if r.err != nil {
		t.Fatalf("portcullis %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// fail runs a command that must fail with a one-line error and print
// nothing on stdout. It returns the error message.
func (e *cliEnv) fail(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := e.run(t, stdin, args...)
	if r.err == nil {
		t.Fatalf("portcullis %s succeeded, want an error; stdout %s", strings.Join(args, " "), r.stdout)
	}
	msg := r.err.Error()
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("error %q is not one line", msg)
	}
	if r.stdout != "" {
		t.Errorf("failed command printed on stdout: %q", r.stdout)
	}
	return msg
}

// runJSON runs a command with --output json that must succeed and decodes
// the one JSON document it prints into T.
func runJSON[T any](t *testing.T, e *cliEnv, stdin string, args ...string) (T, cliResult) {
	t.Helper()
	r := e.ok(t, stdin, append([]string{"--output", "json"}, args...)...)
	var v T
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("portcullis %s: stdout is not JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("portcullis %s: more than one JSON document on stdout: %s", strings.Join(args, " "), r.stdout)
	}
	return v, r
}

type cliClient struct {
	ClientID                string    `json:"client_id"`
	ClientName              string    `json:"client_name"`
	ClientSecret            *string   `json:"client_secret"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	GrantTypes              []string  `json:"grant_types"`
	Scope                   string    `json:"scope"`
	Audience                []string  `json:"audience"`
	IntrospectionAllowed    *bool     `json:"introspection_allowed"`
	DPoPBoundAccessTokens   *bool     `json:"dpop_bound_access_tokens"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
}

type cliUser struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Disabled bool     `json:"disabled"`
}

type cliKey struct {
	KID         string    `json:"kid"`
	Alg         string    `json:"alg"`
	State       string    `json:"state"`
	ActivatesAt time.Time `json:"activates_at"`
	WrapKeyID   string    `json:"wrap_key_id"`
}

func TestCLIMigrate(t *testing.T) {
	e := newCLIEnv(t)
	first, _ := runJSON[map[string][]string](t, e, "", "migrate")
	applied, ok := first["applied"]
	if !ok || len(applied) == 0 || len(first) != 1 {
		t.Fatalf("first migrate = %v, want a non-empty applied list", first)
	}
	second, _ := runJSON[map[string][]string](t, e, "", "migrate")
	if got, ok := second["applied"]; !ok || got == nil || len(got) != 0 {
		t.Fatalf("second migrate = %v, want \"applied\": []", second)
	}
	// Text output says so.
	if r := e.ok(t, "", "migrate"); !strings.Contains(r.stdout, "up to date") {
		t.Errorf("text migrate output %q", r.stdout)
	}
}

// TestCLINoImplicitMigrate: commands other than migrate and serve never
// change the schema. On an unmigrated or outdated database they fail with
// one line naming the database's and the binary's schema versions and
// `portcullis migrate`; once migrated, they work.
func TestCLINoImplicitMigrate(t *testing.T) {
	ref, _ := runJSON[map[string][]string](t, newCLIEnv(t), "", "migrate")
	all := ref["applied"]
	latest, err := strconv.Atoi(strings.SplitN(all[len(all)-1], "_", 2)[0])
	if err != nil {
		t.Fatalf("migration names %v: %v", all, err)
	}
	const password = "purple otter lamp 42\n"
	commands := [][]string{
		{"clients", "create", "--name", "app", "--public", "--audience", "https://api.example.test"},
		{"clients", "list"},
		{"users", "create", "--username", "alice", "--password-stdin"},
		{"users", "list"},
		{"keys", "list"},
		{"keys", "rotate"},
	}
	refused := func(e *cliEnv, at int) {
		t.Helper()
		want := fmt.Sprintf("the database schema is at version %d, this binary needs version %d: run `portcullis migrate`", at, latest)
		for _, args := range commands {
			if msg := e.fail(t, password, args...); !strings.Contains(msg, want) {
				t.Errorf("portcullis %s: %q, want %q", strings.Join(args, " "), msg, want)
			}
		}
	}

	e := newCLIEnv(t)
	refused(e, 0)
	// Nothing was created meanwhile, not even goose's version table.
	var tables int
	if err := openSQLite(t, e).QueryRowContext(t.Context(), "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("the refused commands left %d tables (%v), want none", tables, err)
	}
	if got, _ := runJSON[map[string][]string](t, e, "", "migrate"); len(got["applied"]) != len(all) {
		t.Fatalf("migrate after the refused commands applied %v, want all of %v", got["applied"], all)
	}
	for _, args := range commands {
		e.ok(t, password, args...)
	}

	// An outdated database: the last migration is not recorded.
	old := newCLIEnv(t)
	old.ok(t, "", "migrate")
	if _, err := openSQLite(t, old).ExecContext(t.Context(), "DELETE FROM goose_db_version WHERE version_id = ?", latest); err != nil {
		t.Fatal(err)
	}
	refused(old, latest-1)
}

// openSQLite opens the database of e directly, closed when t ends.
func openSQLite(t *testing.T, e *cliEnv) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", strings.TrimPrefix(e.dsn, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCLIClients(t *testing.T) {
	e := newCLIEnv(t).migrated(t)
	const warning = "no audience"

	pub, r := runJSON[cliClient](t, e, "", "clients", "create", "--name", "spa", "--public", "--scope", "read", "--scope", "write", "--audience", "https://api.example.test")
	if pub.ClientID == "" || pub.ClientSecret != nil || pub.TokenEndpointAuthMethod != "none" || pub.ClientName != "spa" ||
		pub.Scope != "read write" || !slices.Equal(pub.Audience, []string{"https://api.example.test"}) ||
		!slices.Equal(pub.GrantTypes, []string{"password", "refresh_token"}) {
		t.Errorf("public client %+v", pub)
	}
	if pub.CreatedAt.IsZero() || time.Since(pub.CreatedAt) > time.Minute {
		t.Errorf("created_at %v", pub.CreatedAt)
	}
	if strings.Contains(r.stderr, warning) {
		t.Errorf("warning although an audience was given: %s", r.stderr)
	}

	conf, r := runJSON[cliClient](t, e, "", "clients", "create", "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	if conf.ClientSecret == nil || len(*conf.ClientSecret) < 32 || conf.TokenEndpointAuthMethod != "client_secret_basic" ||
		!slices.Equal(conf.GrantTypes, []string{"client_credentials"}) || conf.Scope != "admin" || conf.Audience == nil || len(conf.Audience) != 0 {
		t.Errorf("confidential client %+v", conf)
	}
	if !strings.Contains(r.stderr, warning) || !strings.Contains(r.stderr, "--audience") {
		t.Errorf("no warning on stderr for a client without audience: %q", r.stderr)
	}

	// -q prints only the id (and the secret for a confidential client).
	r = e.ok(t, "", "clients", "create", "-q", "--name", "quiet-public", "--public", "--audience", "a")
	qPub := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(qPub) != 1 || qPub[0] == "" || strings.ContainsAny(qPub[0], " \t{") {
		t.Errorf("-q public output %q, want one line with the id", r.stdout)
	}
	r = e.ok(t, "", "clients", "create", "-q", "--name", "quiet-conf", "--audience", "a")
	qConf := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(qConf) != 2 || qConf[0] == "" || qConf[1] == "" || qConf[0] == qConf[1] {
		t.Errorf("-q confidential output %q, want the id and the secret on two lines", r.stdout)
	}
	for _, id := range []string{qPub[0], qConf[0]} {
		if c, _ := runJSON[cliClient](t, e, "", "clients", "get", id); c.ClientID != id {
			t.Errorf("clients get %s = %+v", id, c)
		}
	}

	// list and get never show a secret.
	list, r := runJSON[[]cliClient](t, e, "", "clients", "list")
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ClientID)
		if c.ClientSecret != nil {
			t.Errorf("list shows a secret for %s", c.ClientID)
		}
	}
	slices.Sort(ids)
	want := []string{pub.ClientID, conf.ClientID, qPub[0], qConf[0]}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("list ids %v, want %v", ids, want)
	}
	if strings.Contains(r.stdout, *conf.ClientSecret) {
		t.Error("list output contains a secret")
	}
	got, r := runJSON[cliClient](t, e, "", "clients", "get", conf.ClientID)
	if got.ClientID != conf.ClientID || got.ClientName != "admin" || got.ClientSecret != nil || strings.Contains(r.stdout, `"client_secret"`) {
		t.Errorf("get %+v", got)
	}

	// rotate-secret prints a new secret once; a public client has none.
	rot, _ := runJSON[cliClient](t, e, "", "clients", "rotate-secret", conf.ClientID)
	if rot.ClientID != conf.ClientID || rot.ClientSecret == nil || *rot.ClientSecret == *conf.ClientSecret || *rot.ClientSecret == "" {
		t.Errorf("rotate-secret %+v", rot)
	}
	if msg := e.fail(t, "", "clients", "rotate-secret", pub.ClientID); !strings.Contains(msg, "public") {
		t.Errorf("rotate-secret on a public client: %q", msg)
	}

	// delete, then it is gone.
	del, _ := runJSON[map[string]string](t, e, "", "clients", "delete", pub.ClientID)
	if del["deleted"] != pub.ClientID {
		t.Errorf("delete = %v", del)
	}
	if msg := e.fail(t, "", "clients", "get", pub.ClientID); !strings.Contains(msg, "not found") {
		t.Errorf("get after delete: %q", msg)
	}
	if list, _ := runJSON[[]cliClient](t, e, "", "clients", "list"); len(list) != 3 {
		t.Errorf("%d clients after delete, want 3", len(list))
	}

	// Validation errors.
	if msg := e.fail(t, "", "clients", "create", "--name", "x", "--public", "--grant-type", "client_credentials"); !strings.Contains(msg, "client_credentials") {
		t.Errorf("public client_credentials: %q", msg)
	}
	if msg := e.fail(t, "", "clients", "create", "--name", "x", "--grant-type", "implicit"); !strings.Contains(msg, "implicit") {
		t.Errorf("unsupported grant: %q", msg)
	}
	e.fail(t, "", "clients", "create", "--public")
}

// TestCLIClientIntrospection: clients create --introspect grants a
// confidential client the introspection permission, clients update changes
// it (and only the fields given) on an existing client, every
// representation shows it, and a public client can never hold it.
func TestCLIClientIntrospection(t *testing.T) {
	e := newCLIEnv(t).migrated(t)
	allowed := func(t *testing.T, c cliClient, want bool) {
		t.Helper()
		if c.IntrospectionAllowed == nil || *c.IntrospectionAllowed != want {
			t.Fatalf("client %s: introspection_allowed %v, want %v", c.ClientID, c.IntrospectionAllowed, want)
		}
	}
	rs, _ := runJSON[cliClient](t, e, "", "clients", "create", "--name", "rs", "--grant-type", "client_credentials",
		"--scope", "read", "--audience", "https://api.example.test", "--introspect")
	allowed(t, rs, true)
	plain, _ := runJSON[cliClient](t, e, "", "clients", "create", "--name", "plain", "--audience", "https://api.example.test")
	allowed(t, plain, false)
	got, _ := runJSON[cliClient](t, e, "", "clients", "get", rs.ClientID)
	allowed(t, got, true)
	list, _ := runJSON[[]cliClient](t, e, "", "clients", "list")
	for _, c := range list {
		allowed(t, c, c.ClientID == rs.ClientID)
	}
	if r := e.ok(t, "", "clients", "get", rs.ClientID); !strings.Contains(r.stdout, "introspection_allowed:") || !strings.Contains(r.stdout, "true") {
		t.Errorf("text output lacks introspection_allowed: %s", r.stdout)
	}
	if r := e.ok(t, "", "clients", "list"); !strings.Contains(r.stdout, "INTROSPECT") {
		t.Errorf("list output lacks an introspection column: %s", r.stdout)
	}

	// update changes only what it is given.
	upd, _ := runJSON[cliClient](t, e, "", "clients", "update", rs.ClientID, "--introspect=false")
	allowed(t, upd, false)
	if upd.ClientName != "rs" || upd.Scope != "read" || !slices.Equal(upd.GrantTypes, []string{"client_credentials"}) ||
		!slices.Equal(upd.Audience, []string{"https://api.example.test"}) || upd.TokenEndpointAuthMethod != "client_secret_basic" ||
		upd.ClientSecret != nil || !upd.CreatedAt.Equal(rs.CreatedAt) || upd.UpdatedAt.Before(rs.UpdatedAt) {
		t.Errorf("update --introspect=false changed other fields: %+v, was %+v", upd, rs)
	}
	if got, _ := runJSON[cliClient](t, e, "", "clients", "get", rs.ClientID); *got.IntrospectionAllowed {
		t.Error("update was not stored")
	}
	upd, _ = runJSON[cliClient](t, e, "", "clients", "update", rs.ClientID, "--introspect")
	allowed(t, upd, true)
	upd, _ = runJSON[cliClient](t, e, "", "clients", "update", rs.ClientID, "--name", "rs-2", "--scope", "read", "--scope", "write",
		"--auth-method", "client_secret_post")
	allowed(t, upd, true)
	if upd.ClientName != "rs-2" || upd.Scope != "read write" || upd.TokenEndpointAuthMethod != "client_secret_post" ||
		!slices.Equal(upd.Audience, []string{"https://api.example.test"}) {
		t.Errorf("update --name --scope --auth-method: %+v", upd)
	}
	if upd, _ = runJSON[cliClient](t, e, "", "clients", "update", rs.ClientID, "--audience="); len(upd.Audience) != 0 || upd.Audience == nil {
		t.Errorf("update --audience= should clear the audience: %+v", upd)
	}

	// A public client can never be allowed.
	if msg := e.fail(t, "", "clients", "create", "--name", "spa", "--public", "--introspect"); !strings.Contains(msg, "introspect") {
		t.Errorf("public client with --introspect: %q", msg)
	}
	pub, _ := runJSON[cliClient](t, e, "", "clients", "create", "--name", "spa", "--public", "--audience", "a")
	allowed(t, pub, false)
	if msg := e.fail(t, "", "clients", "update", pub.ClientID, "--introspect"); !strings.Contains(msg, "introspect") {
		t.Errorf("update a public client with --introspect: %q", msg)
	}
	if msg := e.fail(t, "", "clients", "update", rs.ClientID, "--auth-method", "none"); !strings.Contains(msg, "public") {
		t.Errorf("update a confidential client to auth method none: %q", msg)
	}
	if msg := e.fail(t, "", "clients", "update", "does-not-exist", "--introspect"); !strings.Contains(msg, "not found") {
		t.Errorf("update an unknown client: %q", msg)
	}
	if msg := e.fail(t, "", "clients", "update", rs.ClientID); !strings.Contains(msg, "--introspect") {
		t.Errorf("update without changes: %q", msg)
	}
	e.fail(t, "", "clients", "update")
	if got, _ := runJSON[cliClient](t, e, "", "clients", "get", pub.ClientID); *got.IntrospectionAllowed {
		t.Error("a refused update was stored")
	}
}

// TestCLIClientDPoPBoundAccessTokens: clients create
// --dpop-bound-access-tokens registers a client whose token requests must
// carry a DPoP proof (RFC 9449 §5.2), public or confidential; every
// representation (create, get, list; JSON and text) shows the setting,
// false by default, and clients update changes it alone.
func TestCLIClientDPoPBoundAccessTokens(t *testing.T) {
	e := newCLIEnv(t).migrated(t)
	bound := func(t *testing.T, c cliClient, want bool) {
		t.Helper()
		if c.DPoPBoundAccessTokens == nil || *c.DPoPBoundAccessTokens != want {
			t.Fatalf("client %s: dpop_bound_access_tokens %v, want %v", c.ClientID, c.DPoPBoundAccessTokens, want)
		}
	}
	spa, _ := runJSON[cliClient](t, e, "", "clients", "create", "--name", "spa", "--public", "--audience", "https://api.example.test",
		"--dpop-bound-access-tokens")
	bound(t, spa, true)
	svc, _ := runJSON[cliClient](t, e, "", "clients", "create", "--name", "svc", "--grant-type", "client_credentials",
		"--audience", "https://api.example.test", "--dpop-bound-access-tokens")
	bound(t, svc, true)
	plain, _ := runJSON[cliClient](t, e, "", "clients", "create", "--name", "plain", "--audience", "https://api.example.test")
	bound(t, plain, false)
	for _, c := range []cliClient{spa, svc, plain} {
		got, _ := runJSON[cliClient](t, e, "", "clients", "get", c.ClientID)
		bound(t, got, *c.DPoPBoundAccessTokens)
	}
	list, _ := runJSON[[]cliClient](t, e, "", "clients", "list")
	if len(list) != 3 {
		t.Fatalf("list has %d clients, want 3", len(list))
	}
	for _, c := range list {
		bound(t, c, c.ClientID != plain.ClientID)
	}
	if r := e.ok(t, "", "clients", "get", spa.ClientID); !regexp.MustCompile(`(?m)^dpop_bound_access_tokens:\s+true$`).MatchString(r.stdout) {
		t.Errorf("text output of get lacks dpop_bound_access_tokens: true:\n%s", r.stdout)
	}
	if r := e.ok(t, "", "clients", "get", plain.ClientID); !regexp.MustCompile(`(?m)^dpop_bound_access_tokens:\s+false$`).MatchString(r.stdout) {
		t.Errorf("text output of get lacks dpop_bound_access_tokens: false:\n%s", r.stdout)
	}
	if r := e.ok(t, "", "clients", "list"); !strings.Contains(r.stdout, "DPOP") {
		t.Errorf("list output lacks a DPoP column:\n%s", r.stdout)
	}

	// update changes only what it is given.
	upd, _ := runJSON[cliClient](t, e, "", "clients", "update", svc.ClientID, "--dpop-bound-access-tokens=false")
	bound(t, upd, false)
	if upd.ClientName != "svc" || !slices.Equal(upd.GrantTypes, []string{"client_credentials"}) ||
		!slices.Equal(upd.Audience, []string{"https://api.example.test"}) || upd.TokenEndpointAuthMethod != "client_secret_basic" ||
		*upd.IntrospectionAllowed || upd.ClientSecret != nil || !upd.CreatedAt.Equal(svc.CreatedAt) {
		t.Errorf("update --dpop-bound-access-tokens=false changed other fields: %+v, was %+v", upd, svc)
	}
	got, _ := runJSON[cliClient](t, e, "", "clients", "get", svc.ClientID)
	bound(t, got, false)
	upd, _ = runJSON[cliClient](t, e, "", "clients", "update", plain.ClientID, "--dpop-bound-access-tokens")
	bound(t, upd, true)
	upd, _ = runJSON[cliClient](t, e, "", "clients", "update", plain.ClientID, "--name", "plain-2")
	bound(t, upd, true)
	if msg := e.fail(t, "", "clients", "update", plain.ClientID); !strings.Contains(msg, "--dpop-bound-access-tokens") {
		t.Errorf("update without changes does not list --dpop-bound-access-tokens: %q", msg)
	}
}

func TestCLIUsers(t *testing.T) {
	e := newCLIEnv(t).migrated(t)
	const password = "purple otter lamp 42"

	created, _ := runJSON[map[string]string](t, e, password+"\n", "users", "create", "--username", "Alice", "--password-stdin", "--role", "user", "--role", "admin")
	if len(created) != 2 || created["id"] == "" || created["username"] != "Alice" {
		t.Fatalf("users create = %v, want {\"id\",\"username\"}", created)
	}
	// Windows line ending and no line ending both work.
	runJSON[map[string]string](t, e, "another fine password\r\n", "users", "create", "--username", "bob", "--password-stdin")
	runJSON[map[string]string](t, e, "yet another password", "users", "create", "--username", "carol", "--password-stdin")

	failures := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"without --password-stdin", password + "\n", []string{"users", "create", "--username", "dave"}, "--password-stdin"},
		{"empty stdin", "", []string{"users", "create", "--username", "dave", "--password-stdin"}, "no password"},
		{"policy failure", "short\n", []string{"users", "create", "--username", "dave", "--password-stdin"}, "at least 12"},
		{"common password", "111111111111\n", []string{"users", "create", "--username", "dave", "--password-stdin"}, "too common"},
		{"bad username", password + "\n", []string{"users", "create", "--username", "d", "--password-stdin"}, "username"},
		{"bad role", password + "\n", []string{"users", "create", "--username", "dave", "--password-stdin", "--role", "a b"}, "role"},
		{"duplicate", password + "\n", []string{"users", "create", "--username", "ALICE", "--password-stdin"}, "taken"},
		{"missing username", password + "\n", []string{"users", "create", "--password-stdin"}, "username"},
		{"password too long for stdin", strings.Repeat("p", 5000), []string{"users", "create", "--username", "dave", "--password-stdin"}, "4096"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			if msg := e.fail(t, tc.stdin, tc.args...); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q lacks %q", msg, tc.want)
			}
		})
	}

	list, _ := runJSON[[]cliUser](t, e, "", "users", "list")
	var names []string
	for _, u := range list {
		names = append(names, u.Username)
	}
	if !slices.Equal(names, []string{"Alice", "bob", "carol"}) {
		t.Errorf("users list %v, want Alice, bob, carol (and none of the failed ones)", names)
	}

	for _, key := range []string{"Alice", "alice", created["id"]} {
		u, r := runJSON[cliUser](t, e, "", "users", "get", key)
		if u.ID != created["id"] || !slices.Equal(u.Roles, []string{"admin", "user"}) || u.Disabled {
			t.Errorf("users get %s = %+v", key, u)
		}
		if strings.Contains(r.stdout, "argon2") {
			t.Error("users get shows the password hash")
		}
	}

	if u, _ := runJSON[cliUser](t, e, "", "users", "disable", "alice"); !u.Disabled {
		t.Errorf("disable = %+v", u)
	}
	if u, _ := runJSON[cliUser](t, e, "", "users", "get", "alice"); !u.Disabled {
		t.Error("disable did not persist")
	}
	if u, _ := runJSON[cliUser](t, e, "", "users", "enable", "alice"); u.Disabled {
		t.Errorf("enable = %+v", u)
	}
	if u, _ := runJSON[cliUser](t, e, "", "users", "set-roles", "alice", "ops", "audit"); !slices.Equal(u.Roles, []string{"audit", "ops"}) {
		t.Errorf("set-roles = %+v", u)
	}
	if u, _ := runJSON[cliUser](t, e, "", "users", "set-roles", "alice"); u.Roles == nil || len(u.Roles) != 0 {
		t.Errorf("set-roles with no roles = %+v, want []", u)
	}
	if msg := e.fail(t, "", "users", "set-roles", "alice", "bad role"); !strings.Contains(msg, "role") {
		t.Errorf("set-roles invalid: %q", msg)
	}
	for _, args := range [][]string{{"users", "get", "nobody"}, {"users", "disable", "nobody"}, {"users", "delete", "nobody"}} {
		if msg := e.fail(t, "", args...); !strings.Contains(msg, "not found") {
			t.Errorf("%v: %q", args, msg)
		}
	}

	// The password really came from stdin: the stored user logs in with it.
	store := storagetest.OpenDSN(t, e.dsn)
	svc := &identity.Service{Store: store, Hasher: identity.NewPasswordHasher(identity.Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})}
	for user, pw := range map[string]string{"alice": password, "bob": "another fine password", "carol": "yet another password"} {
		if _, err := svc.Authenticate(t.Context(), user, pw, "192.0.2.1"); err != nil {
			t.Errorf("%s cannot log in with the password given on stdin: %v", user, err)
		}
	}

	if del, _ := runJSON[map[string]string](t, e, "", "users", "delete", "bob"); del["deleted"] != "bob" {
		t.Errorf("delete = %v", del)
	}
	e.fail(t, "", "users", "get", "bob")
	if list, _ := runJSON[[]cliUser](t, e, "", "users", "list"); len(list) != 2 {
		t.Errorf("%d users after delete, want 2", len(list))
	}
}

func TestCLIKeys(t *testing.T) {
	e := newCLIEnv(t).migrated(t)
	if ks, _ := runJSON[[]cliKey](t, e, "", "keys", "list"); len(ks) != 0 {
		t.Fatalf("keys on a fresh database: %+v", ks)
	}

	before := time.Now()
	now, r := runJSON[cliKey](t, e, "", "keys", "rotate")
	if now.KID == "" || now.ActivatesAt.Before(before.Add(-2*time.Second)) || now.ActivatesAt.After(time.Now()) {
		t.Errorf("rotate = %+v, want activates_at about now", now)
	}
	// Without PORTCULLIS_SECRETS_KEY on SQLite, the key file is generated.
	keyFile := strings.TrimPrefix(e.dsn, "sqlite://") + ".key"
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets key file %s: %v %v, want mode 0600", keyFile, fi, err)
	}
	if !strings.Contains(r.stderr, "PORTCULLIS_SECRETS_KEY") {
		t.Errorf("no warning about the generated secrets key: %q", r.stderr)
	}
	all, _ := runJSON[[]cliKey](t, e, "", "keys", "list")
	ks, rs := keysOfAlg(all, "ES256"), keysOfAlg(all, "RS256")
	if len(ks) != 1 || ks[0].KID != now.KID || ks[0].State != "active" {
		t.Fatalf("after rotate: %+v, want one active ES256 key", all)
	}
	// RFC 9068 §2.1: an RS256 key is kept beside the default ES256 one.
	if len(rs) != 1 || rs[0].State != "active" {
		t.Fatalf("after rotate: %+v, want one active RS256 key too", all)
	}

	pre, r := runJSON[cliKey](t, e, "", "keys", "rotate", "--prepublish")
	if pre.KID == "" || pre.KID == now.KID || time.Until(pre.ActivatesAt) < 50*time.Minute {
		t.Errorf("rotate --prepublish = %+v, want activates_at about an hour from now", pre)
	}
	if strings.Contains(r.stderr, "generated") {
		t.Errorf("second rotation generated a new secrets key: %q", r.stderr)
	}
	all, _ = runJSON[[]cliKey](t, e, "", "keys", "list")
	ks, rs = keysOfAlg(all, "ES256"), keysOfAlg(all, "RS256")
	if len(ks) != 2 || ks[0].State != "active" || ks[1].KID != pre.KID || ks[1].State != "published" {
		t.Errorf("after rotate --prepublish: %+v, want active then published", ks)
	}
	if len(rs) != 2 || rs[0].State != "active" || rs[1].State != "published" {
		t.Errorf("RS256 after rotate --prepublish: %+v, want active then published", rs)
	}
	if ks[0].WrapKeyID == "" || ks[0].WrapKeyID != ks[1].WrapKeyID {
		t.Errorf("wrap key ids %q %q, want both sealed with the generated key", ks[0].WrapKeyID, ks[1].WrapKeyID)
	}
}

// keysOfAlg returns the keys of one algorithm, in the listed order.
func keysOfAlg(ks []cliKey, alg string) []cliKey {
	var out []cliKey
	for _, k := range ks {
		if k.Alg == alg {
			out = append(out, k)
		}
	}
	return out
}

func randomSecretsKeyB64(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestCLIKeysRewrap(t *testing.T) {
	base := newCLIEnv(t).migrated(t)
	k1, k2 := randomSecretsKeyB64(t), randomSecretsKeyB64(t)
	withK1 := base.with("PORTCULLIS_SECRETS_KEY=" + k1)
	withK2 := base.with("PORTCULLIS_SECRETS_KEY=" + k2)
	rewrapEnv := base.with("PORTCULLIS_SECRETS_KEY="+k2, "PORTCULLIS_SECRETS_KEY_OLD="+k1)

	first, _ := runJSON[cliKey](t, withK1, "", "keys", "rotate")
	if _, err := os.Stat(strings.TrimPrefix(base.dsn, "sqlite://") + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file was generated although PORTCULLIS_SECRETS_KEY is set: %v", err)
	}

	// The new key alone cannot open the stored key.
	withK2.fail(t, "", "keys", "rotate")

	out, _ := runJSON[map[string]any](t, rewrapEnv, "", "keys", "rewrap")
	if out["rewrapped"] != float64(2) || out["wrap_key_id"] == "" {
		t.Fatalf("rewrap = %v, want 2 keys (ES256 and RS256) re-sealed", out)
	}
	all, _ := runJSON[[]cliKey](t, withK2, "", "keys", "list")
	ks := keysOfAlg(all, "ES256")
	if len(all) != 2 || len(ks) != 1 || ks[0].KID != first.KID || ks[0].WrapKeyID != out["wrap_key_id"] || all[0].WrapKeyID != all[1].WrapKeyID {
		t.Errorf("keys after rewrap %+v, want %s sealed under %v", ks, first.KID, out["wrap_key_id"])
	}
	// Rewrapping again has nothing to do.
	if again, _ := runJSON[map[string]any](t, rewrapEnv, "", "keys", "rewrap"); again["rewrapped"] != float64(0) {
		t.Errorf("second rewrap = %v, want 0", again)
	}

	// Now the new key alone works, and the old one no longer does.
	second, _ := runJSON[cliKey](t, withK2, "", "keys", "rotate")
	if second.KID == "" || second.KID == first.KID {
		t.Errorf("rotate after rewrap = %+v", second)
	}
	withK1.fail(t, "", "keys", "rotate")

	// Rewrap without the old key cannot open the keys.
	third := base.with("PORTCULLIS_SECRETS_KEY=" + randomSecretsKeyB64(t))
	third.fail(t, "", "keys", "rewrap")
}

func TestCLIErrors(t *testing.T) {
	e := newCLIEnv(t)
	e.ok(t, "", "migrate")
	tests := []struct {
		name    string
		environ []string // added to the environment
		args    []string
		want    string // substring of the error
	}{
		{"unknown client get", nil, []string{"clients", "get", "nope"}, "not found"},
		{"unknown client delete", nil, []string{"--output", "json", "clients", "delete", "nope"}, "not found"},
		{"unknown client rotate", nil, []string{"clients", "rotate-secret", "nope"}, "not found"},
		{"bad flag", nil, []string{"clients", "list", "--bogus"}, "bogus"},
		{"unknown command", nil, []string{"frobnicate"}, "frobnicate"},
		{"unknown subcommand", nil, []string{"-o", "json", "clients", "frobnicate"}, "frobnicate"},
		{"group without subcommand", nil, []string{"keys"}, "subcommand"},
		{"no command", nil, nil, "subcommand"},
		{"missing argument", nil, []string{"clients", "get"}, "arg"},
		{"extra argument", nil, []string{"clients", "list", "x"}, "x"},
		{"missing --name", nil, []string{"clients", "create"}, "name"},
		{"output yaml", nil, []string{"--output", "yaml", "clients", "list"}, "yaml"},
		{"output yaml on migrate", nil, []string{"-o", "yaml", "migrate"}, "yaml"},
		{"bad TTL env", []string{"PORTCULLIS_ACCESS_TOKEN_TTL=banana"}, []string{"clients", "list"}, "PORTCULLIS_ACCESS_TOKEN_TTL"},
		{"bad refresh TTL env", []string{"PORTCULLIS_REFRESH_TOKEN_TTL=1 week"}, []string{"migrate"}, "PORTCULLIS_REFRESH_TOKEN_TTL"},
		{"bad secrets key env", []string{"PORTCULLIS_SECRETS_KEY=not-base64!"}, []string{"keys", "rotate"}, "secrets_key"},
		{"missing config file", nil, []string{"--config", filepath.Join(t.TempDir(), "missing.yaml"), "clients", "list"}, "missing.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := e.with(tc.environ...)
			if msg := env.fail(t, "", tc.args...); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q lacks %q", msg, tc.want)
			}
		})
	}
	// The JSON flag does not turn errors into JSON on stdout either.
	if r := e.run(t, "", "--output", "json", "users", "get", "nobody"); r.err == nil || r.stdout != "" {
		t.Errorf("json error run: err %v stdout %q", r.err, r.stdout)
	}
}

func TestCLIConfigPrecedence(t *testing.T) {
	e := newCLIEnv(t).migrated(t)
	flagDSN := "sqlite://" + filepath.Join(t.TempDir(), "flag.db")
	e.ok(t, "", "--dsn", flagDSN, "migrate")

	c, _ := runJSON[cliClient](t, e, "", "--dsn", flagDSN, "clients", "create", "--name", "via-flag", "--audience", "a")
	if list, _ := runJSON[[]cliClient](t, e, "", "--dsn", flagDSN, "clients", "list"); len(list) != 1 || list[0].ClientID != c.ClientID {
		t.Errorf("list with --dsn %+v, want the client created with --dsn", list)
	}
	if list, _ := runJSON[[]cliClient](t, e, "", "clients", "list"); len(list) != 0 {
		t.Errorf("the env DSN database has %d clients, want 0: --dsn must beat PORTCULLIS_DSN", len(list))
	}
	if _, err := os.Stat(strings.TrimPrefix(flagDSN, "sqlite://")); err != nil {
		t.Errorf("flag DSN file not created: %v", err)
	}

	// A flag also beats a bad environment value of another key it overrides.
	bad := e.with("PORTCULLIS_DSN=mysql://nobody@tcp(127.0.0.1:1)/none")
	if list, _ := runJSON[[]cliClient](t, bad, "", "--dsn", flagDSN, "clients", "list"); len(list) != 1 {
		t.Errorf("with --dsn and an unusable PORTCULLIS_DSN: %d clients, want 1", len(list))
	}

	// The environment beats the YAML file.
	yamlDSN := "sqlite://" + filepath.Join(t.TempDir(), "yaml.db")
	cfg := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(cfg, []byte("dsn: "+yamlDSN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runJSON[cliClient](t, e, "", "--config", cfg, "clients", "create", "--name", "via-env", "--audience", "a")
	if list, _ := runJSON[[]cliClient](t, e, "", "clients", "list"); len(list) != 1 || list[0].ClientName != "via-env" {
		t.Errorf("env DSN database %+v, want the client created with env and --config", list)
	}
	noEnv := &cliEnv{environ: []string{"PORTCULLIS_ARGON2_MEMORY_KIB=64"}}
	noEnv.ok(t, "", "--config", cfg, "migrate")
	if list, _ := runJSON[[]cliClient](t, noEnv, "", "--config", cfg, "clients", "list"); len(list) != 0 {
		t.Errorf("YAML DSN database has %d clients, want 0: env must beat the file", len(list))
	}
}
