package main

import (
	"regexp"
	"strings"
	"testing"
)

// table parses the text output of a list command: a header and rows whose
// columns all start where the header's do (aligned), none empty. It
// returns the rows as maps from header to cell.
func table(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	cell := regexp.MustCompile(`\S+`)
	starts := cell.FindAllStringIndex(lines[0], -1)
	header := cell.FindAllString(lines[0], -1)
	var rows []map[string]string
	for _, line := range lines[1:] {
		got := cell.FindAllStringIndex(line, -1)
		if len(got) != len(starts) {
			t.Fatalf("row %q has %d cells, header %q has %d", line, len(got), lines[0], len(starts))
		}
		row := map[string]string{}
		for i, g := range got {
			if g[0] != starts[i][0] {
				t.Fatalf("column %s of %q starts at %d, its header at %d:\n%s", header[i], line, g[0], starts[i][0], out)
			}
			row[header[i]] = line[g[0]:g[1]]
		}
		rows = append(rows, row)
	}
	return rows
}

// record parses the text output of a get command: "member: value" lines
// whose values all start in one column (aligned).
func record(t *testing.T, out string) map[string]string {
	t.Helper()
	rec := map[string]string{}
	col := -1
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		name, _, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(name, " ") {
			t.Fatalf("line %q is not member: value", line)
		}
		rest := line[len(name)+1:]
		value := strings.TrimLeft(rest, " ")
		if start := len(line) - len(rest) + (len(rest) - len(value)); col < 0 {
			col = start
		} else if start != col {
			t.Fatalf("value of %s starts at %d, others at %d:\n%s", name, start, col, out)
		}
		rec[name] = value
	}
	return rec
}

// TestCLITextOutput: users list/get and clients list/get show every field
// alike in the table and the record (lists comma-separated, "-" when
// empty, times in RFC 3339), in aligned columns with no empty cell.
func TestCLITextOutput(t *testing.T) {
	e := newCLIEnv(t).migrated(t)
	const password = "purple otter lamp 42"
	e.ok(t, password+"\n", "users", "create", "--username", "alice", "--password-stdin", "--role", "user", "--role", "admin")
	e.ok(t, password+"\n", "users", "create", "--username", "bob", "--password-stdin")

	users := table(t, e.ok(t, "", "users", "list").stdout)
	if len(users) != 2 {
		t.Fatalf("users list: %v", users)
	}
	wantRoles := map[string]string{"alice": "admin,user", "bob": "-"}
	for _, row := range users {
		rec := record(t, e.ok(t, "", "users", "get", row["USERNAME"]).stdout)
		if row["ROLES"] != wantRoles[row["USERNAME"]] {
			t.Errorf("users list: %s's ROLES %q, want %q", row["USERNAME"], row["ROLES"], wantRoles[row["USERNAME"]])
		}
		for col, member := range map[string]string{"ID": "id", "USERNAME": "username", "ROLES": "roles", "DISABLED": "disabled",
			"LOCKED": "locked", "LOCKED_UNTIL": "locked_until", "MFA_REQUIRED": "mfa_required", "MFA_ENABLED": "mfa_enabled"} {
			if row[col] != rec[member] {
				t.Errorf("%s: users list %s %q, users get %s %q", row["USERNAME"], col, row[col], member, rec[member])
			}
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(rec["created_at"]) {
			t.Errorf("created_at %q is not RFC 3339 UTC", rec["created_at"])
		}
	}

	e.ok(t, "", "clients", "create", "--name", "svc", "--grant-type", "client_credentials", "--scope", "read", "--scope", "write",
		"--audience", "https://a.example", "--audience", "https://b.example")
	e.ok(t, "", "clients", "create", "--name", "spa", "--public")
	clients := table(t, e.ok(t, "", "clients", "list").stdout)
	if len(clients) != 2 {
		t.Fatalf("clients list: %v", clients)
	}
	want := map[string]map[string]string{
		"svc": {"SCOPE": "read,write", "AUDIENCE": "https://a.example,https://b.example", "GRANT_TYPES": "client_credentials", "AUTH_METHODS": "client_secret_basic,client_secret_post"},
		"spa": {"SCOPE": "-", "AUDIENCE": "-", "GRANT_TYPES": "password,refresh_token", "AUTH_METHODS": "none"},
	}
	for _, row := range clients {
		rec := record(t, e.ok(t, "", "clients", "get", row["CLIENT_ID"]).stdout)
		for col, member := range map[string]string{"CLIENT_ID": "client_id", "NAME": "client_name", "AUTH_METHODS": "token_endpoint_auth_methods_accepted",
			"GRANT_TYPES": "grant_types", "SCOPE": "scope", "AUDIENCE": "audience", "INTROSPECT": "introspection_allowed",
			"DPOP": "dpop_bound_access_tokens", "MFA": "mfa_required"} {
			if row[col] != rec[member] {
				t.Errorf("%s: clients list %s %q, clients get %s %q", row["NAME"], col, row[col], member, rec[member])
			}
			if w, ok := want[row["NAME"]][col]; ok && row[col] != w {
				t.Errorf("%s: %s %q, want %q", row["NAME"], col, row[col], w)
			}
		}
	}
}
