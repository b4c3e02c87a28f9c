package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// nextLink returns the URL of the Link rel="next" header of r resolved
// against base (RFC 8288 §3.2), or "" when there is none.
func nextLink(t *testing.T, base string, h http.Header) string {
	t.Helper()
	re := regexp.MustCompile(`^<([^>]*)>;\s*rel="next"$`)
	var found []string
	for _, v := range h.Values("Link") {
		for _, link := range strings.Split(v, ",") {
			if m := re.FindStringSubmatch(strings.TrimSpace(link)); m != nil {
				found = append(found, m[1])
			}
		}
	}
	switch len(found) {
	case 0:
		return ""
	case 1:
	default:
		t.Fatalf("%d next links: %v", len(found), found)
	}
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(found[0])
	if err != nil {
		t.Fatalf("next link %q: %v", found[0], err)
	}
	return b.ResolveReference(ref).String()
}

// listAll follows the next links from first and returns every item's
// key, in order, and the sizes of the pages.
func listAll(t *testing.T, token, first, key string) (keys []string, pages []int) {
	t.Helper()
	for u := first; u != ""; {
		r := proctest.Do(t, http.MethodGet, u, "", nil, "Authorization", "Bearer "+token)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", u, r.Status, r.Body)
		}
		var items []map[string]any
		if err := json.Unmarshal(r.Body, &items); err != nil {
			t.Fatalf("GET %s: not a JSON array: %v", u, err)
		}
		for _, it := range items {
			keys = append(keys, fmt.Sprint(it[key]))
		}
		pages = append(pages, len(items))
		if len(pages) > 200 {
			t.Fatal("the next links do not end")
		}
		u = nextLink(t, u, r.Header)
	}
	return keys, pages
}

// TestAdminListPagination: GET /admin/users and GET /admin/clients page
// through everything exactly once in a stable order by following the Link
// rel="next" headers, the filters select what they say (also combined and
// across pages), and malformed parameters are 400 without echoing them;
// the CLI's list commands filter alike. On both backends, against the
// real binary.
func TestAdminListPagination(t *testing.T) {
	env := []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0", "PORTCULLIS_LOCKOUT_MAX_FAILURES=2"}
	portcullis.EachBackend(t, env, func(t *testing.T, srv *proctest.Server) {
		hash, err := bcrypt.GenerateFromPassword([]byte("the old fastapi password"), 4)
		if err != nil {
			t.Fatal(err)
		}
		// 32 users: mixed case, role ops on every third, disabled on
		// every fourth, and two names that a LIKE pattern would confuse.
		var lines []string
		var names []string
		role := map[string]bool{}
		disabled := map[string]bool{}
		for i := range 30 {
			name := fmt.Sprintf("user%02d", i)
			if i%2 == 1 {
				name = fmt.Sprintf("User%02d", i)
			}
			roles := []string{"reader"}
			if i%3 == 0 {
				roles = append(roles, "ops")
				role[strings.ToLower(name)] = true
			}
			disabled[strings.ToLower(name)] = i%4 == 0
			b, _ := json.Marshal(map[string]any{"username": name, "password_hash": string(hash), "roles": roles, "disabled": i%4 == 0})
			lines = append(lines, string(b))
			names = append(names, strings.ToLower(name))
		}
		for _, name := range []string{"zeta_1", "zetaa1"} {
			b, _ := json.Marshal(map[string]any{"username": name, "password_hash": string(hash)})
			lines = append(lines, string(b))
			names = append(names, name)
		}
		srv.CLI(t, strings.Join(lines, "\n")+"\n", "users", "import", "-")
		slices.Sort(names)
		token := adminToken(t, srv)
		base := srv.AdminURL + "/admin/users"

		lower := func(ks []string) []string {
			out := make([]string, len(ks))
			for i, k := range ks {
				out[i] = strings.ToLower(k)
			}
			return out
		}
		want := func(keep func(string) bool) []string {
			out := []string{}
			for _, n := range names {
				if keep(n) {
					out = append(out, n)
				}
			}
			return out
		}
		check := func(what, first string, wantKeys []string) []int {
			t.Helper()
			got, pages := listAll(t, token, first, "username")
			if got := lower(got); !slices.Equal(got, wantKeys) {
				t.Fatalf("%s: got %v, want %v", what, got, wantKeys)
			}
			return pages
		}

		// Everything, in username order ignoring case, a page at a time.
		if pages := check("limit 7", base+"?limit=7", names); !slices.Equal(pages, []int{7, 7, 7, 7, 4}) {
			t.Errorf("limit 7: pages %v, want [7 7 7 7 4]", pages)
		}
		if pages := check("default limit", base, names); len(pages) != 1 {
			t.Errorf("default limit: %d pages, want 1", len(pages))
		}
		check("limit 32: no empty last page", base+"?limit=32", names)

		// Filters, alone and combined, across pages.
		check("username_prefix, any case", base+"?limit=3&username_prefix=USER1", want(func(n string) bool { return strings.HasPrefix(n, "user1") }))
		check("username_prefix with _", base+"?username_prefix=zeta_", []string{"zeta_1"})
		check("role", base+"?limit=2&role=ops", want(func(n string) bool { return role[n] }))
		check("disabled", base+"?limit=4&disabled=true", want(func(n string) bool { return disabled[n] }))
		check("enabled ops user2*", base+"?limit=1&role=ops&disabled=false&username_prefix=user2",
			want(func(n string) bool { return role[n] && !disabled[n] && strings.HasPrefix(n, "user2") }))
		check("no match", base+"?role=nobody", []string{})

		// locked: two wrong passwords lock this network out of user03.
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		for range 2 {
			wantOAuthError(t, passwordGrant(t, srv, app.ClientID, "User03", "a wrong password!!", ""), http.StatusBadRequest, "invalid_grant")
		}
		check("locked", base+"?locked=true", []string{"user03"})
		check("not locked", base+"?limit=5&locked=false", want(func(n string) bool { return n != "user03" }))

		// A user created while paging: after the cursor it shows up, and
		// nothing shows up twice.
		r := proctest.Do(t, http.MethodGet, base+"?limit=10", "", nil, "Authorization", "Bearer "+token)
		next := nextLink(t, base, r.Header)
		b, _ := json.Marshal(map[string]any{"username": "user15b", "password_hash": string(hash)})
		srv.CLI(t, string(b)+"\n", "users", "import", "-")
		b, _ = json.Marshal(map[string]any{"username": "user00a", "password_hash": string(hash)})
		srv.CLI(t, string(b)+"\n", "users", "import", "-")
		var seen []string
		var firstPage []map[string]any
		if err := json.Unmarshal(r.Body, &firstPage); err != nil {
			t.Fatal(err)
		}
		for _, it := range firstPage {
			seen = append(seen, strings.ToLower(fmt.Sprint(it["username"])))
		}
		rest, _ := listAll(t, token, next, "username")
		seen = append(seen, lower(rest)...)
		wantSeen := append(slices.Clone(names), "user15b")
		slices.Sort(wantSeen)
		if !slices.Equal(seen, wantSeen) {
			t.Fatalf("paging while a user is added: got %v, want %v", seen, wantSeen)
		}

		// Malformed parameters: 400, and the answer never repeats them.
		for _, q := range []string{
			"disabled=maybe", "locked=1", "limit=0", "limit=1001", "limit=-5", "limit=seven",
			"limit=99999999999999999999999", "cursor=%3Cscript%3E", "cursor=dTEuYWxpY2U=",
			"role=a&role=b", "limit=5&limit=5", "username_prefix=" + strings.Repeat("x", 256),
			"username_prefix=a%00b", "username_prefix=%FF%FE", "role=%0D%0Ainjected",
			// A query Go's url.Values would drop a pair of, silently
			// listing without that filter: refused.
			"role=ops%", "username_prefix=%zzuser", "limit=1;x=1", "disabled=true&%=seven",
		} {
			r := proctest.Do(t, http.MethodGet, base+"?"+q, "", nil, "Authorization", "Bearer "+token)
			wantAdminError(t, q, r, http.StatusBadRequest, "invalid_request")
			for _, echo := range []string{"maybe", "seven", "9999", "<script", "u003cscript", "injected", "xxxx", "dTEu"} {
				if strings.Contains(string(r.Body), echo) {
					t.Errorf("%s: the answer repeats the input: %s", q, r.Body)
				}
			}
		}
		r = proctest.Do(t, http.MethodGet, srv.AdminURL+"/admin/clients?scope=%zzreports", "", nil, "Authorization", "Bearer "+token)
		wantAdminError(t, "clients, scope=%zzreports", r, http.StatusBadRequest, "invalid_request")
		// A clients cursor is not a users cursor.
		cs := proctest.Do(t, http.MethodGet, srv.AdminURL+"/admin/clients?limit=1", "", nil, "Authorization", "Bearer "+token)
		cnext := nextLink(t, srv.AdminURL+"/admin/clients", cs.Header)
		if cnext == "" {
			t.Fatal("clients: no next link with limit 1")
		}
		cu, _ := url.Parse(cnext)
		r = proctest.Do(t, http.MethodGet, base+"?cursor="+url.QueryEscape(cu.Query().Get("cursor")), "", nil, "Authorization", "Bearer "+token)
		wantAdminError(t, "a clients cursor", r, http.StatusBadRequest, "invalid_request")
		// Unauthenticated: 401, the list is not shown.
		r = proctest.Do(t, http.MethodGet, base+"?limit=1", "", nil)
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("without a token: %d", r.Status)
		}

		// Clients: by client_id, every one once, filtered.
		var ids []string
		for i := range 5 {
			c := srv.CreateClient(t, "--name", fmt.Sprintf("Batch job %d", i), "--grant-type", "client_credentials", "--scope", "reports")
			ids = append(ids, c.ClientID)
		}
		all, _ := listAll(t, token, srv.AdminURL+"/admin/clients", "client_id")
		got, pages := listAll(t, token, srv.AdminURL+"/admin/clients?limit=2", "client_id")
		if !slices.Equal(got, all) || !slices.IsSorted(all) || len(pages) != (len(all)+1)/2 {
			t.Fatalf("clients by 2: %v in pages %v; all %v", got, pages, all)
		}
		for _, id := range append(ids, app.ClientID, "portcullis-console") {
			if !slices.Contains(all, id) {
				t.Fatalf("client %s missing from %v", id, all)
			}
		}
		got, _ = listAll(t, token, srv.AdminURL+"/admin/clients?limit=1&name_prefix=batch+JOB", "client_id")
		sorted := slices.Sorted(slices.Values(ids))
		if !slices.Equal(got, sorted) {
			t.Fatalf("name_prefix: %v, want %v", got, sorted)
		}
		got, _ = listAll(t, token, srv.AdminURL+"/admin/clients?client_id_prefix="+ids[2][:8], "client_id")
		if !slices.Contains(got, ids[2]) || len(got) > 5 {
			t.Fatalf("client_id_prefix: %v", got)
		}
		got, _ = listAll(t, token, srv.AdminURL+"/admin/clients?client_id_prefix="+strings.ToUpper(ids[2][:8]), "client_id")
		if len(got) != 0 && strings.ToUpper(ids[2][:8]) != ids[2][:8] {
			t.Fatalf("client_id_prefix is exact: %v", got)
		}
		got, _ = listAll(t, token, srv.AdminURL+"/admin/clients?grant_type=password", "client_id")
		if !slices.Equal(got, []string{app.ClientID}) {
			t.Fatalf("grant_type=password: %v, want [%s]", got, app.ClientID)
		}
		got, _ = listAll(t, token, srv.AdminURL+"/admin/clients?scope=reports&limit=3", "client_id")
		if !slices.Equal(got, sorted) {
			t.Fatalf("scope=reports: %v, want %v", got, sorted)
		}

		// The CLI filters alike and prints every match.
		var cliUsers []map[string]any
		if err := json.Unmarshal(srv.CLI(t, "", "users", "list", "--role", "ops", "--disabled", "false", "--output", "json"), &cliUsers); err != nil {
			t.Fatal(err)
		}
		var cliNames []string
		for _, u := range cliUsers {
			cliNames = append(cliNames, strings.ToLower(fmt.Sprint(u["username"])))
		}
		if w := want(func(n string) bool { return role[n] && !disabled[n] }); !slices.Equal(cliNames, w) {
			t.Fatalf("users list --role ops --disabled false: %v, want %v", cliNames, w)
		}
		out := srv.CLI(t, "", "users", "list", "--locked", "true")
		if !strings.Contains(string(out), "User03") || strings.Count(string(out), "\n") != 2 {
			t.Fatalf("users list --locked true:\n%s", out)
		}
		if _, stderr, err := srv.TryCLI("", "users", "list", "--locked", "maybe"); err == nil || !strings.Contains(string(stderr), "--locked must be true or false") {
			t.Fatalf("--locked maybe: %v %s", err, stderr)
		}
		var cliClients []map[string]any
		if err := json.Unmarshal(srv.CLI(t, "", "clients", "list", "--name-prefix", "batch", "--output", "json"), &cliClients); err != nil {
			t.Fatal(err)
		}
		if len(cliClients) != 5 {
			t.Fatalf("clients list --name-prefix batch: %d clients, want 5", len(cliClients))
		}
	})
}
