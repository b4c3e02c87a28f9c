package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestOpenAPIAgainstBinary sends every operation of both OpenAPI
// documents, as the real binary serves them, to that binary: each example
// request body once (an operation without a body once), with the path
// parameters' examples and, where the operation needs a token, an admin
// token on the admin listener and a user's token on the public one. Every
// answer must have a status the document lists for the operation (so
// every documented route exists: an unrouted one answers 404 or 405
// outside the list), and a JSON body must validate against the documented
// schema of that status.
func TestOpenAPIAgainstBinary(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "openapi-admin", "--grant-type", "client_credentials", "--scope", "admin")
		adminToken := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		const password = "Tr0ub4dor&3-horse-battery" // the account examples' password
		srv.CreateUser(t, "openapi-user", password)
		app := srv.CreateClient(t, "--name", "openapi-app", "--public", "--grant-type", "password")
		userToken := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{
			"grant_type": {"password"}, "username": {"openapi-user"}, "password": {password}, "client_id": {app.ClientID},
		}.Encode())).AccessToken
		for _, l := range []struct{ name, base, token string }{
			{"public", srv.URL, userToken},
			{"admin", srv.AdminURL, adminToken},
		} {
			t.Run(l.name, func(t *testing.T) { checkOperations(t, l.base, l.token) })
		}
	})
}

func checkOperations(t *testing.T, base, token string) {
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const docURL = "mem://openapi.json"
	if err := c.AddResource(docURL, doc); err != nil {
		t.Fatal(err)
	}
	root := doc.(map[string]any)
	paths := root["paths"].(map[string]any)
	names := make([]string, 0, len(paths))
	for p := range paths {
		names = append(names, p)
	}
	sort.Strings(names)
	sent := 0
	for _, path := range names {
		item := paths[path].(map[string]any)
		for _, method := range []string{"options", "get", "post", "put", "patch", "delete"} {
			op, ok := item[method].(map[string]any)
			if !ok {
				continue
			}
			target := path
			for _, p := range opParameters(root, item, op) {
				if p["in"] == "path" {
					ex, ok := p["example"].(string)
					if !ok {
						t.Fatalf("%s %s: path parameter %v has no example", method, path, p["name"])
					}
					target = strings.ReplaceAll(target, "{"+p["name"].(string)+"}", url.PathEscape(ex))
				}
			}
			// The operation's security, else the document's: none, HTTP
			// Basic client authentication (the OAuth examples authenticate
			// the client in the body instead), or a token.
			sec, ok := op["security"].([]any)
			if !ok {
				sec, _ = root["security"].([]any)
			}
			auth := "Bearer " + token
			if len(sec) == 0 || slices.ContainsFunc(sec, func(s any) bool { _, basic := s.(map[string]any)["clientBasic"]; return basic }) {
				auth = ""
			}
			type request struct {
				name, contentType string
				body              []byte
			}
			reqs := []request{{name: "no body"}}
			if rb := derefObject(root, op["requestBody"]); rb != nil {
				reqs = nil
				for mt, media := range rb["content"].(map[string]any) {
					exs, _ := media.(map[string]any)["examples"].(map[string]any)
					for name, ex := range exs {
						reqs = append(reqs, request{name: name, contentType: mt, body: encodeExample(t, mt, derefObject(root, ex)["value"])})
					}
				}
				sort.Slice(reqs, func(i, j int) bool { return reqs[i].name < reqs[j].name })
			}
			for _, rq := range reqs {
				req, _ := http.NewRequest(strings.ToUpper(method), base+target, bytes.NewReader(rq.body))
				if rq.contentType != "" {
					req.Header.Set("Content-Type", rq.contentType)
				}
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				sent++
				what := strings.ToUpper(method) + " " + target + " (" + rq.name + ")"
				status := strconv.Itoa(resp.StatusCode)
				responses := op["responses"].(map[string]any)
				documented, ok := responses[status]
				if !ok {
					t.Errorf("%s: status %s is not documented: %s", what, status, body)
					continue
				}
				t.Logf("%s: %s", what, status)
				media, _ := derefObject(root, documented)["content"].(map[string]any)
				if _, ok := media["application/json"]; !ok || len(body) == 0 {
					continue
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("%s: Content-Type %q, documented application/json", what, ct)
				}
				loc := "#" + jsonPointer("paths", path, method, "responses", status)
				if ref, ok := documented.(map[string]any)["$ref"].(string); ok {
					loc = ref
				}
				s, err := c.Compile(docURL + loc + jsonPointer("content", "application/json", "schema"))
				if err != nil {
					t.Fatal(err)
				}
				v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
				if err == nil {
					err = s.Validate(v)
				}
				if err != nil {
					t.Errorf("%s: %s body does not match the documented schema: %v\n%s", what, status, err, body)
				}
			}
		}
	}
	if sent == 0 {
		t.Fatal("no operation sent")
	}
}

// encodeExample returns the body of an example value for media type mt.
func encodeExample(t *testing.T, mt string, v any) []byte {
	switch mt {
	case "application/x-www-form-urlencoded":
		form := url.Values{}
		for k, x := range v.(map[string]any) {
			form.Set(k, x.(string))
		}
		return []byte(form.Encode())
	case "application/x-ndjson", "text/csv":
		return []byte(v.(string))
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// opParameters returns the parameters of op and its path item, references
// followed.
func opParameters(root, item, op map[string]any) []map[string]any {
	var out []map[string]any
	for _, src := range []map[string]any{item, op} {
		ps, _ := src["parameters"].([]any)
		for _, p := range ps {
			out = append(out, derefObject(root, p))
		}
	}
	return out
}

// derefObject returns v, or what its local $ref names in root.
func derefObject(root map[string]any, v any) map[string]any {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = root
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, _ := cur.(map[string]any)
		cur = next[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
	}
	m, _ = cur.(map[string]any)
	return m
}

// jsonPointer returns the JSON pointer (RFC 6901) of keys.
func jsonPointer(keys ...string) string {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k))
	}
	return b.String()
}

// noRedirects sends requests as documented: a redirect is the answer,
// not the page it points to.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
