package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/server"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/challenge"
)

// fullServer is a server with every optional route registered, as the
// binary has them: the authorization challenge endpoint, the audit trail,
// the admin console and /metrics.
func fullServer(t *testing.T) *servertest.Env {
	t.Helper()
	return servertest.New(t, servertest.Options{Server: func(o *server.Options) {
		codes, err := oauth.NewCodeIssuer(oauth.ProviderConfig{RefreshSecret: bytes.Repeat([]byte("c"), 32)}, o.Store)
		if err != nil {
			t.Fatal(err)
		}
		sessions, ok := o.Store.(challenge.Store)
		if !ok {
			t.Fatal("the store keeps no auth sessions")
		}
		o.FirstParty = &server.FirstParty{Codes: codes, Sessions: sessions, SessionLifetime: time.Minute, StepUpLifetime: time.Minute}
		o.Registry = prometheus.NewRegistry()
		auditStore, ok := o.Store.(audit.Store)
		if !ok {
			t.Fatal("the store keeps no audit events")
		}
		o.Audit = &audit.Log{Store: auditStore}
		o.Console = true
	}})
}

// fetchDocument GETs base/openapi.json and decodes it.
func fetchDocument(t *testing.T, base string) map[string]any {
	t.Helper()
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/openapi.json: %d %s", base, resp.StatusCode, body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("GET %s/openapi.json: %v", base, err)
	}
	return doc
}

// methods are the operation keys of an OpenAPI Path Item Object.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// documentedRoutes returns the http.ServeMux patterns ("METHOD /path") of
// every operation doc describes (OpenAPI and ServeMux write path
// parameters alike, {id}).
func documentedRoutes(doc map[string]any) []string {
	var out []string
	for path, item := range doc["paths"].(map[string]any) {
		for _, m := range methods {
			if _, ok := item.(map[string]any)[m]; ok {
				out = append(out, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIRoutes: every route registered on each listener is in the
// document that listener serves, and every route documented is
// registered, so a route added without documenting it fails here.
func TestOpenAPIRoutes(t *testing.T) {
	e := fullServer(t)
	for _, l := range []struct {
		name       string
		url        string
		registered []string
	}{
		{"public", e.Public.URL, e.PublicRoutes},
		{"admin", e.Admin.URL, e.AdminRoutes},
	} {
		t.Run(l.name, func(t *testing.T) {
			if len(l.registered) == 0 {
				t.Fatal("no routes recorded")
			}
			documented := documentedRoutes(fetchDocument(t, l.url))
			for _, r := range l.registered {
				if !slices.Contains(documented, r) {
					t.Errorf("route %q is registered but not in the %s OpenAPI document", r, l.name)
				}
			}
			for _, r := range documented {
				if !slices.Contains(l.registered, r) {
					t.Errorf("route %q is in the %s OpenAPI document but not registered", r, l.name)
				}
			}
		})
	}
}

// TestOpenAPIServed: the documents are JSON with a strong ETag and an
// hour's caching, revalidated with If-None-Match; the public one is
// readable from every origin (as the metadata), the admin one from none.
func TestOpenAPIServed(t *testing.T) {
	e := servertest.New(t, servertest.Options{})
	for _, l := range []struct {
		name   string
		url    string
		public bool
	}{{"public", e.Public.URL, true}, {"admin", e.Admin.URL, false}} {
		t.Run(l.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, l.url+"/openapi.json", nil)
			req.Header.Set("Origin", "https://app.example")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != "application/json" ||
				h.Get("Cache-Control") != "public, max-age=3600" || !regexp.MustCompile(`^"[A-Za-z0-9_-]+"$`).MatchString(h.Get("ETag")) {
				t.Fatalf("status %d, headers %v", resp.StatusCode, h)
			}
			var doc struct {
				OpenAPI string `json:"openapi"`
			}
			if err := json.Unmarshal(body, &doc); err != nil || doc.OpenAPI != "3.1.0" {
				t.Fatalf("openapi = %q, %v", doc.OpenAPI, err)
			}
			if got, want := h.Get("Access-Control-Allow-Origin"), map[bool]string{true: "*"}[l.public]; got != want {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, want)
			}
			req, _ = http.NewRequest(http.MethodGet, l.url+"/openapi.json", nil)
			req.Header.Set("If-None-Match", `W/`+h.Get("ETag"))
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match with the ETag: status %d, want 304", resp.StatusCode)
			}
		})
	}
}

// openAPISchemas compiles the official OpenAPI 3.1 schemas (testdata) and
// returns the one that validates documents and their Schema Objects.
func openAPISchemas(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, f := range []string{"schema.json", "schema-base.json", "dialect-base.schema.json", "meta-base.schema.json"} {
		doc := readJSON(t, filepath.Join("testdata", "openapi31", f))
		if err := c.AddResource(doc.(map[string]any)["$id"].(string), doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile("https://spec.openapis.org/oas/3.1/schema-base/2022-10-07")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readJSON(t *testing.T, path string) any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// served returns the raw documents of both listeners, decoded as the
// schema validator wants them (numbers as json.Number).
func served(t *testing.T) map[string]any {
	t.Helper()
	e := servertest.New(t, servertest.Options{})
	docs := map[string]any{}
	for name, url := range map[string]string{"public": e.Public.URL, "admin": e.Admin.URL} {
		resp, err := http.Get(url + "/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = v
	}
	return docs
}

// TestOpenAPIDocumentsValid: both documents are valid OpenAPI 3.1 (the
// official schema, every Schema Object in the OAS dialect of JSON Schema
// 2020-12), every local $ref resolves, operationIds are unique and every
// path parameter is declared.
func TestOpenAPIDocumentsValid(t *testing.T) {
	s := openAPISchemas(t)
	for name, doc := range served(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(doc); err != nil {
				t.Fatalf("not a valid OpenAPI 3.1 document: %v", err)
			}
			walkRefs(t, doc, doc)
			ids := map[string]bool{}
			for path, item := range doc.(map[string]any)["paths"].(map[string]any) {
				item := item.(map[string]any)
				for _, m := range methods {
					op, ok := item[m].(map[string]any)
					if !ok {
						continue
					}
					id, _ := op["operationId"].(string)
					if id == "" || ids[id] {
						t.Errorf("%s %s: operationId %q missing or repeated", m, path, id)
					}
					ids[id] = true
					declared := map[string]bool{}
					for _, p := range parameters(doc, item, op) {
						if p["in"] == "path" {
							declared[p["name"].(string)] = true
						}
					}
					for _, want := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
						if !declared[want[1]] {
							t.Errorf("%s %s: path parameter %s not declared", m, path, want[1])
						}
					}
				}
			}
		})
	}
}

// walkRefs fails the test for a $ref in v that does not resolve in doc.
func walkRefs(t *testing.T, doc, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok && resolve(doc, ref) == nil {
			t.Errorf("$ref %q does not resolve", ref)
		}
		for _, x := range v {
			walkRefs(t, doc, x)
		}
	case []any:
		for _, x := range v {
			walkRefs(t, doc, x)
		}
	}
}

// resolve returns what the local reference ref ("#/a/b") names in doc,
// or nil.
func resolve(doc any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	v := doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[tok]
	}
	return v
}

// deref follows $ref.
func deref(doc any, v any) map[string]any {
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		m, _ = resolve(doc, ref).(map[string]any)
	}
	return m
}

// parameters returns the parameters of op and its path item.
func parameters(doc any, item, op map[string]any) []map[string]any {
	var out []map[string]any
	for _, src := range []map[string]any{item, op} {
		ps, _ := src["parameters"].([]any)
		for _, p := range ps {
			out = append(out, deref(doc, p))
		}
	}
	return out
}

// pointer returns the JSON pointer fragment of the path of keys.
func pointer(keys ...string) string {
	var b strings.Builder
	b.WriteString("#")
	for _, k := range keys {
		b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k))
	}
	return b.String()
}

// TestOpenAPIExamples: every example request body, and every example of a
// parameter, validates against its schema (JSON Schema 2020-12, the
// dialect of OpenAPI 3.1); a JSON Lines body line by line against the
// schema of x-json-lines-item.
func TestOpenAPIExamples(t *testing.T) {
	for name, doc := range served(t) {
		t.Run(name, func(t *testing.T) {
			base := "mem://openapi/" + name + ".json"
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft2020)
			c.AssertFormat()
			if err := c.AddResource(base, doc); err != nil {
				t.Fatal(err)
			}
			compile := func(keys ...string) *jsonschema.Schema {
				t.Helper()
				s, err := c.Compile(base + pointer(keys...))
				if err != nil {
					t.Fatalf("compile %v: %v", keys, err)
				}
				return s
			}
			examples := 0
			components, _ := doc.(map[string]any)["components"].(map[string]any)
			params, _ := components["parameters"].(map[string]any)
			for name, p := range params {
				if ex, ok := p.(map[string]any)["example"]; ok {
					examples++
					if err := compile("components", "parameters", name, "schema").Validate(ex); err != nil {
						t.Errorf("parameter %s: example: %v", name, err)
					}
				}
			}
			for path, item := range doc.(map[string]any)["paths"].(map[string]any) {
				item := item.(map[string]any)
				for _, m := range methods {
					op, ok := item[m].(map[string]any)
					if !ok {
						continue
					}
					body := deref(doc, op["requestBody"])
					if body == nil {
						continue
					}
					for mt, media := range body["content"].(map[string]any) {
						media := media.(map[string]any)
						exs, _ := media["examples"].(map[string]any)
						if len(exs) == 0 {
							t.Errorf("%s %s %s: no examples", m, path, mt)
						}
						for exName, ex := range exs {
							value := deref(doc, ex)["value"]
							examples++
							s := compile("paths", path, m, "requestBody", "content", mt, "schema")
							if err := s.Validate(value); err != nil {
								t.Errorf("%s %s example %s: %v", m, path, exName, err)
							}
							if mt == "application/x-www-form-urlencoded" {
								for k, v := range value.(map[string]any) {
									if _, ok := v.(string); !ok {
										t.Errorf("%s %s example %s: form field %s is not a string", m, path, exName, k)
									}
								}
							}
							if _, ok := media["x-json-lines-item"]; ok {
								line := compile("paths", path, m, "requestBody", "content", mt, "x-json-lines-item")
								for i, l := range strings.Split(strings.TrimSpace(value.(string)), "\n") {
									v, err := jsonschema.UnmarshalJSON(strings.NewReader(l))
									if err == nil {
										err = line.Validate(v)
									}
									if err != nil {
										t.Errorf("%s %s example %s line %d: %v", m, path, exName, i+1, err)
									}
								}
							}
						}
					}
				}
			}
			if examples == 0 {
				t.Fatal("no examples found")
			}
		})
	}
}
