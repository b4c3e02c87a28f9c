package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/portcullis-auth/portcullis"

// rule says which of the module's packages a package may import (directly,
// in its non-test files). Patterns are package paths relative to the
// module; a trailing "/..." also matches every subpackage.
type rule struct {
	pkg   string
	allow []string
}

// serverModules are what a resource server or the client registry must
// never link.
var serverModules = []string{"github.com/ory/fosite", "gorm.io/", "github.com/glebarez/", "github.com/go-sql-driver/", "modernc.org/",
	module + "/keys", module + "/storage", module + "/identity", module + "/internal/seal", module + "/internal/server", module + "/configs"}

// rules is the layout of the README's Architecture section: dependencies
// point inward, domain packages know no transport and no storage, the
// resource-server library links nothing of the server, and cmd/ wires.
var rules = []rule{
	{"internal/apperr", nil},
	{"internal/clientip", nil},
	{"internal/ratelimit", nil},
	{"internal/galera", nil},
	{"internal/seal", nil},
	{"internal/httpjson", []string{"internal/apperr"}},
	{"internal/listpage", []string{"internal/apperr"}},
	{"internal/cors", []string{"internal/apperr", "internal/httpjson"}},
	{"audit", []string{"internal/apperr", "internal/listpage"}},
	{"identity", []string{"audit", "identity/totp", "internal/apperr", "internal/listpage", "internal/seal"}},
	{"identity/totp", []string{"internal/seal"}},
	{"keys", []string{"audit", "internal/apperr", "internal/seal", "oauth/resource"}},
	{"oauth/clients", []string{"audit", "internal/apperr", "internal/cors", "internal/listpage"}},
	{"oauth/jws", nil},
	{"oauth/dpop", []string{"oauth/jws"}},
	{"oauth/resource", []string{"oauth/jws", "oauth/dpop"}},
	{"oauth/firstparty", nil},
	{"oauth/revocation", []string{"internal/apperr"}},
	{"oauth", []string{"audit", "identity", "keys", "oauth/clients", "oauth/jws", "oauth/dpop", "internal/apperr", "internal/cors", "internal/httpjson", "internal/ratelimit"}},
	{"oauth/clientcache", []string{"oauth", "oauth/clients"}},
	{"oauth/challenge", []string{"identity", "oauth", "oauth/clients", "oauth/dpop", "internal/apperr", "internal/ratelimit"}},
	{"storage", []string{"audit", "identity", "identity/totp", "keys", "oauth/clients", "oauth", "oauth/challenge", "oauth/dpop", "oauth/revocation", "internal/apperr"}},
	{"internal/server/console", nil},
	{"internal/server/bearer", []string{"oauth", "oauth/dpop", "internal/apperr", "internal/httpjson"}},
	{"internal/server/adminapi", []string{"audit", "identity", "keys", "oauth/clients", "oauth", "oauth/dpop", "internal/apperr", "internal/httpjson", "internal/server/bearer"}},
	{"internal/server/account", []string{"audit", "identity", "oauth", "internal/apperr", "internal/httpjson", "internal/server/bearer"}},
	{"internal/server", []string{"audit", "identity", "keys", "oauth/clients", "oauth", "oauth/challenge", "oauth/dpop", "oauth/revocation", "internal/..."}},
	{"configs", []string{"identity", "keys", "oauth/clients", "oauth", "oauth/dpop", "storage", "internal/seal", "internal/clientip", "internal/cors"}},
	{"cmd/userapi", []string{"oauth/resource", "oauth/jws", "oauth/dpop"}},
	{"deploy/examples/dpop-client", []string{"oauth/dpop", "oauth/jws"}},
	{"deploy/examples/totp-code", nil},
	{"cmd/loadgen", []string{"identity", "identity/totp", "internal/galera", "internal/seal", "oauth/dpop"}},
	{"cmd/portcullis", []string{"..."}},
}

// loadgenModules are what the load generator must never link: it measures
// the servers from outside, through HTTP and the CLI (its MySQL driver only
// creates the benchmark's empty database).
var loadgenModules = []string{"github.com/ory/fosite", "gorm.io/", "github.com/glebarez/", "modernc.org/",
	module + "/keys", module + "/storage", module + "/oauth/clients", module + "/oauth/clientcache", module + "/oauth/resource",
	module + "/oauth/revocation", module + "/internal/server", module + "/configs"}

// forbidden are, per package, import-path prefixes it must not depend on
// even indirectly: a resource server links no fosite, database driver or
// key manager, the client registry knows neither fosite nor JOSE, and the
// load generator links nothing of the server but identity's argon2id (and
// what identity's second factors link: identity/totp, internal/seal).
var forbidden = map[string][]string{
	"oauth/jws":                   serverModules,
	"oauth/resource":              serverModules,
	"oauth/dpop":                  serverModules,
	"oauth/firstparty":            serverModules,
	"deploy/examples/dpop-client": serverModules,
	"deploy/examples/totp-code":   serverModules,
	"cmd/userapi":                 serverModules,
	"oauth/clients":               append([]string{"github.com/go-jose/"}, serverModules...),
	"cmd/loadgen":                 loadgenModules,
}

// testOnly are packages no production package may import.
var testOnly = []string{"internal/testkit", "internal/proctest", "identity/identitytest", "internal/server/servertest", "storage/storagetest", "internal/archtest", "interop"}

func matches(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// TestImportRules checks every package of the module against rules (its
// direct imports of the module's packages, and every dependency for the
// forbidden modules): a package without a rule fails too, so a new package must be placed in
// the layout (and the README) on purpose.
func TestImportRules(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found:", err)
	}
	cmd := exec.CommandContext(t.Context(), gobin, "list", "-json=ImportPath,Imports,Deps", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		var own []string
		for _, imp := range p.Imports {
			if r, ok := strings.CutPrefix(imp, module+"/"); ok {
				own = append(own, r)
			}
		}
		if slices.ContainsFunc(testOnly, func(s string) bool { return matches(s, rel) }) {
			continue // test helpers may use anything
		}
		for _, imp := range own {
			if slices.ContainsFunc(testOnly, func(s string) bool { return matches(s, imp) }) {
				t.Errorf("%s imports the test-only package %s", rel, imp)
			}
		}
		i := slices.IndexFunc(rules, func(r rule) bool { return matches(r.pkg, rel) })
		if i < 0 {
			t.Errorf("package %s has no place in the layout (add it to rules and to the README's Architecture section)", rel)
			continue
		}
		checked++
		for _, imp := range own {
			if !slices.ContainsFunc(rules[i].allow, func(a string) bool { return matches(a, imp) }) {
				t.Errorf("%s must not import %s (allowed: %v)", rel, imp, rules[i].allow)
			}
		}
		for _, dep := range p.Deps {
			if slices.ContainsFunc(forbidden[rel], func(f string) bool { return strings.HasPrefix(dep, f) }) {
				t.Errorf("%s depends on %s", rel, dep)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages checked; is go list working?", checked)
	}
}
