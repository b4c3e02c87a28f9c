package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/storage"
)

// importSample is testdata/import-users.jsonl: users of a FastAPI
// application as passlib hashed them (johndoe is the FastAPI tutorial's
// user, whose password is "secret"; the others are from
// identity/bcrypt_test.go), one disabled, and one argon2id user (the
// argon2 reference CLI's vector with 8-byte salt, rehashed at login to the
// server's 16).
var importSample = []struct {
	username, password string
	disabled           bool
}{
	{"johndoe", "secret", false},
	{"alice", "correct horse battery staple", false},
	{"bob", "Tr0ub4dor&3 is long enough", false},
	{"carol", "pässwörd with umlauts", false},
	{"alice-disabled", strings.Repeat("x", 72) + "tail ignored by bcrypt", true},
	{"erin", "password", false},
}

// storedHash reads a user's password hash from the server's database
// (the admin API and CLI never show it), failing the test if there is no
// such user.
func storedHash(t *testing.T, srv *proctest.Server, username string) string {
	t.Helper()
	h := storedHashOrEmpty(t, srv, username)
	if h == "" {
		t.Fatalf("no user %s in the database", username)
	}
	return h
}

// TestImportUsers: `portcullis users import` of the sample file, then each
// user logs in with the password grant and their old password, after
// which the stored hash is argon2id; a re-run skips everyone; a file with
// broken lines reports each by number and imports the rest.
func TestImportUsers(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		out := srv.CLI(t, "", "users", "import", "testdata/import-users.jsonl", "--output", "json")
		var report identity.ImportReport
		if err := json.Unmarshal(out, &report); err != nil {
			t.Fatalf("report %s: %v", out, err)
		}
		t.Logf("portcullis users import testdata/import-users.jsonl --output json:\n%s", out)
		if report.Imported != len(importSample) || report.Failed+report.Skipped+report.Updated != 0 || len(report.Lines) != len(importSample) {
			t.Fatalf("report %s: want all %d imported", out, len(importSample))
		}
		for i, l := range report.Lines {
			if l.Line != i+1 || l.Username != importSample[i].username || l.Outcome != identity.ImportImported {
				t.Errorf("line result %+v; want line %d, %s imported", l, i+1, importSample[i].username)
			}
		}
		if strings.Contains(string(out), "$2") || strings.Contains(string(out), "$argon2") {
			t.Errorf("the report shows a hash: %s", out)
		}

		app := srv.CreateClient(t, "--name", "app", "--public")
		for _, u := range importSample {
			before := storedHash(t, srv, u.username)
			if r := passwordGrant(t, srv, app.ClientID, u.username, u.password+"x", ""); r.Status != http.StatusBadRequest || oauthCode(r) != "invalid_grant" {
				t.Errorf("%s with a wrong password: %d %s; want 400 invalid_grant", u.username, r.Status, r.Body)
			}
			r := passwordGrant(t, srv, app.ClientID, u.username, u.password, "")
			after := storedHash(t, srv, u.username)
			if u.disabled {
				if r.Status != http.StatusBadRequest || after != before {
					t.Errorf("disabled %s: %d %s, hash changed %t; want 400, unchanged", u.username, r.Status, r.Body, after != before)
				}
				continue
			}
			if r.Status != http.StatusOK {
				t.Fatalf("%s logging in with the old password: %d %s", u.username, r.Status, r.Body)
			}
			if !strings.HasPrefix(after, "$argon2id$v=19$m=19456,t=2,p=1$") || after == before {
				t.Errorf("%s: stored hash after login %.32s…; want a new argon2id hash with the server's parameters", u.username, after)
			}
			if _, salt, _, err := identity.ParsePHC(after); err != nil || len(salt) != 16 {
				t.Errorf("%s: upgraded hash does not parse with a 16-byte salt: %v", u.username, err)
			}
			if r := passwordGrant(t, srv, app.ClientID, u.username, u.password, ""); r.Status != http.StatusOK {
				t.Errorf("%s logging in again: %d %s", u.username, r.Status, r.Body)
			}
			if again := storedHash(t, srv, u.username); again != after {
				t.Errorf("%s: the second login changed the hash again", u.username)
			}
		}

		// Again: all skipped, nothing duplicated or reverted.
		text := string(srv.CLI(t, "", "users", "import", "testdata/import-users.jsonl"))
		if !strings.Contains(text, "imported 0, updated 0, skipped 6, failed 0") || !strings.Contains(text, "line 1 (johndoe): skipped: the user exists") {
			t.Errorf("re-run:\n%s", text)
		}
		if !strings.HasPrefix(storedHash(t, srv, "alice"), "$argon2id$") {
			t.Errorf("the re-run reverted alice's upgraded hash")
		}
		var users []struct{ Username string }
		if err := json.Unmarshal(srv.CLI(t, "", "users", "list", "--output", "json"), &users); err != nil || len(users) != len(importSample) {
			t.Errorf("users list after the re-run: %d users (%v); want %d", len(users), err, len(importSample))
		}

		// Broken lines among good ones, from standard input: each
		// reported with its number and a fixed reason, the rest imported,
		// exit status non-zero.
		broken := strings.Join([]string{
			`{"username":"frank","password_hash":"$2b$04$P.A3Bplb1RkG3eBNiVHcZOIMDhqE0LycvAxGEN7u.znof5XvBwvsO"}`,
			`{"username":"gina","password_hash":"$2b$15$aMVGakdFeYpUrio8XVfwg.Am8ZuS7h8.BPavEVBhSKMHzQ75K4Y2y"}`,
			`{"username":"hank","password_hash":"$2b$04$P.A3Bplb1RkG3eBNiVHcZOIMDhqE0LycvAxGEN7u.znof5XvBwvsO"`,
			`{"username":"ivan","password_hash":"$2b$04$P.A3Bplb1RkG3eBNiVHcZOIMDhqE0LycvAxGEN7u.znof5XvBwvsO","roles":["reader"]}`,
		}, "\n")
		stdout, stderr, err := srv.TryCLI(broken, "users", "import", "-")
		if err == nil || !strings.Contains(string(stderr), "2 of the lines failed") {
			t.Errorf("import with broken lines: err %v, stderr %s; want a non-zero exit naming the failures", err, stderr)
		}
		for _, want := range []string{
			"line 2 (gina): failed: invalid password_hash: bcrypt cost 15 out of range [4, 14]",
			"line 3: failed: not a JSON object",
			"imported 2, updated 0, skipped 0, failed 2",
		} {
			if !strings.Contains(string(stdout), want) {
				t.Errorf("report lacks %q:\n%s", want, stdout)
			}
		}
		if strings.Contains(string(stdout), "P.A3Bplb1") || strings.Contains(string(stderr), "P.A3Bplb1") {
			t.Errorf("the report repeats a hash")
		}
		for _, name := range []string{"frank", "ivan"} {
			if storedHash(t, srv, name) == "" {
				t.Errorf("%s was not imported", name)
			}
		}
	})
}

// TestImportUsersAdminAPI: POST /admin/users/import with JSON Lines, as an
// admin client; the imported bcrypt user logs in and is rehashed.
func TestImportUsersAdminAPI(t *testing.T) {
	sample, err := os.ReadFile("testdata/import-users.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		tok := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		post := func(body, contentType, query string) proctest.Response {
			return proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users/import"+query, contentType, strings.NewReader(body),
				"Authorization", "Bearer "+tok)
		}
		if r := post(string(sample), "application/json", ""); r.Status != http.StatusBadRequest {
			t.Errorf("Content-Type application/json: %d %s; want 400", r.Status, r.Body)
		}
		if r := post(string(sample), "application/x-ndjson", "?update=yes"); r.Status != http.StatusBadRequest {
			t.Errorf("update=yes: %d %s; want 400", r.Status, r.Body)
		}
		if r := proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users/import", "application/x-ndjson", strings.NewReader(string(sample))); r.Status != http.StatusUnauthorized {
			t.Errorf("without a token: %d; want 401", r.Status)
		}
		if storedHashOrEmpty(t, srv, "alice") != "" {
			t.Fatalf("refused requests imported users")
		}

		withBroken := string(sample) + `{"username":"zed","password_hash":"$2b$15$aMVGakdFeYpUrio8XVfwg.Am8ZuS7h8.BPavEVBhSKMHzQ75K4Y2y"}` + "\n"
		r := post(withBroken, "application/x-ndjson", "")
		if r.Status != http.StatusOK {
			t.Fatalf("import: %d %s", r.Status, r.Body)
		}
		var report identity.ImportReport
		if err := json.Unmarshal(r.Body, &report); err != nil {
			t.Fatal(err)
		}
		last := report.Lines[len(report.Lines)-1]
		if report.Imported != len(importSample) || report.Failed != 1 || last.Line != 7 || last.Reason != "invalid password_hash: bcrypt cost 15 out of range [4, 14]" {
			t.Errorf("report %s", r.Body)
		}

		app := srv.CreateClient(t, "--name", "app", "--public")
		if g := passwordGrant(t, srv, app.ClientID, "johndoe", "secret", ""); g.Status != http.StatusOK {
			t.Fatalf("johndoe: %d %s", g.Status, g.Body)
		}
		if h := storedHashOrEmpty(t, srv, "johndoe"); !strings.HasPrefix(h, "$argon2id$") {
			t.Errorf("johndoe's hash after login: %.10s…; want argon2id", h)
		}

		// Again with update=true: johndoe's hash goes back to the file's
		// (bcrypt), the others are unchanged.
		r = post(string(sample), "application/x-ndjson", "?update=true")
		if err := json.Unmarshal(r.Body, &report); err != nil || r.Status != http.StatusOK {
			t.Fatalf("update: %d %s", r.Status, r.Body)
		}
		if report.Updated != 1 || report.Skipped != len(importSample)-1 || report.Lines[0].Outcome != identity.ImportUpdated {
			t.Errorf("update report %s; want johndoe updated, the rest skipped", r.Body)
		}
	})
}

// storedHashOrEmpty is storedHash, or "" when the user does not exist.
func storedHashOrEmpty(t *testing.T, srv *proctest.Server, username string) string {
	t.Helper()
	var dsn string
	for _, kv := range srv.Env() {
		if v, ok := strings.CutPrefix(kv, "PORTCULLIS_DSN="); ok {
			dsn = v
		}
	}
	st, err := storage.Open(t.Context(), dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.GetUserByUsername(t.Context(), username)
	if errors.Is(err, storage.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("read user %s: %v", username, err)
	}
	return u.PasswordHash
}

// TestImportUsersCSV: the sample users as a CSV export of a FastAPI
// tutorial table (testdata/import-users.csv: its column names, email and
// full_name that Portcullis does not keep, booleans as 0/1, CRLF) import
// through the CLI (by the file's extension) and the admin API (text/csv),
// and each user logs in with the password grant and their old password.
func TestImportUsersCSV(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}, func(t *testing.T, srv *proctest.Server) {
		out := srv.CLI(t, "", "users", "import", "testdata/import-users.csv", "--output", "json")
		var report identity.ImportReport
		if err := json.Unmarshal(out, &report); err != nil {
			t.Fatalf("report %s: %v", out, err)
		}
		if report.Imported != len(importSample) || report.Failed+report.Skipped != 0 ||
			strings.Join(report.IgnoredColumns, ",") != "email,full_name" {
			t.Fatalf("report %s: want all %d imported, email and full_name ignored", out, len(importSample))
		}
		text := srv.CLI(t, "", "users", "import", "testdata/import-users.csv")
		if !strings.Contains(string(text), "ignored columns: email, full_name") || !strings.Contains(string(text), "skipped 6") {
			t.Fatalf("second run's text report:\n%s", text)
		}
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password")
		for _, u := range importSample {
			r := passwordGrant(t, srv, app.ClientID, u.username, u.password, "")
			if u.disabled {
				wantOAuthError(t, r, http.StatusBadRequest, "invalid_grant")
				continue
			}
			proctest.MustToken(t, r)
		}
		// --format overrides the extension; a wrong one is refused.
		if _, stderr, err := srv.TryCLI("", "users", "import", "testdata/import-users.csv", "--format", "xml"); err == nil ||
			!strings.Contains(string(stderr), "--format must be jsonl or csv") {
			t.Fatalf("--format xml: %v %s", err, stderr)
		}
		if _, _, err := srv.TryCLI("", "users", "import", "testdata/import-users.csv", "--format", "jsonl"); err == nil {
			t.Fatal("the CSV file read as JSON Lines was accepted")
		}

		// The admin API: text/csv.
		token := adminToken(t, srv)
		csv := "Username,Hashed_Password,Roles\nfrank," + identityTestBcrypt + ",reader\n"
		r := proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users/import", "text/csv; charset=utf-8", strings.NewReader(csv),
			"Authorization", "Bearer "+token)
		if r.Status != http.StatusOK || r.JSON(t)["imported"] != float64(1) {
			t.Fatalf("POST text/csv: %d %s", r.Status, r.Body)
		}
		r = proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users/import", "text/csv", strings.NewReader("name,hash\nx,y\n"),
			"Authorization", "Bearer "+token)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "the first CSV line must name the columns") {
			t.Fatalf("POST text/csv with a bad header: %d %s", r.Status, r.Body)
		}
		r = proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users/import", "text/plain", strings.NewReader(csv),
			"Authorization", "Bearer "+token)
		wantAdminError(t, "text/plain", r, http.StatusBadRequest, "invalid_request")
	})
}

// identityTestBcrypt is passlib's bcrypt.using(ident="2a", rounds=4) hash
// of "pässwörd with umlauts" (identity/bcrypt_test.go).
const identityTestBcrypt = "$2a$04$Fh8cPALG6Ye/BJ815su9te8O2HlIUv8OU8lD0Em9LvqdWz5tIVxTq"

// TestImportUsersCSVBrokenInput: CSV that spreadsheets and shells really
// produce, through POST /admin/users/import (text/csv), on both backends.
// A quote left open does not swallow the users after it unreported: every
// user line is either in the report or at or after stopped_at_line. A
// byte order mark before a quoted header (PowerShell's Export-Csv) is
// skipped as before an unquoted one. A file with CR-only line endings (one
// long "header") is refused, and the answer never repeats its hashes as
// ignored column names.
func TestImportUsersCSVBrokenInput(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		token := adminToken(t, srv)
		post := func(body string) (proctest.Response, identity.ImportReport) {
			t.Helper()
			r := proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users/import", "text/csv", strings.NewReader(body),
				"Authorization", "Bearer "+token)
			var report identity.ImportReport
			if err := json.Unmarshal(r.Body, &report); err != nil {
				t.Fatalf("%d %s: %v", r.Status, r.Body, err)
			}
			if strings.Contains(string(r.Body), "Fh8cPALG6Ye") {
				t.Errorf("the answer repeats a hash: %s", r.Body)
			}
			return r, report
		}
		h := identityTestBcrypt

		// An opening quote never closed, on line 3 of 5.
		r, report := post("username,password_hash\nalice," + h + "\n\"bob," + h + "\ncarol," + h + "\ndave," + h + "\n")
		reported := map[int]bool{}
		for _, l := range report.Lines {
			reported[l.Line] = true
		}
		for line := 2; line <= 5; line++ {
			if !reported[line] && (report.StoppedAtLine == 0 || report.StoppedAtLine > line) {
				t.Errorf("unclosed quote: line %d is neither reported nor after the stop: %d %s", line, r.Status, r.Body)
			}
		}
		for _, name := range []string{"carol", "dave"} {
			if storedHashOrEmpty(t, srv, name) != "" && !reported[map[string]int{"carol": 4, "dave": 5}[name]] {
				t.Errorf("unclosed quote: %s imported but not reported", name)
			}
		}

		// A multi-line field that closes properly is no broken quote.
		r, report = post("username,password_hash,address\njane," + h + ",\"1 Main St\nSpringfield\"\nkate," + h + ",x\n")
		if r.Status != http.StatusOK || report.Imported != 2 || len(report.Lines) != 2 || report.Lines[1].Line != 4 {
			t.Errorf("multi-line address: %d %s; want jane (line 2) and kate (line 4) imported", r.Status, r.Body)
		}

		// PowerShell: BOM, every field quoted, CRLF.
		r, report = post("\uFEFF\"username\",\"hashed_password\"\r\n\"gina\",\"" + h + "\"\r\n")
		if r.Status != http.StatusOK || report.Imported != 1 {
			t.Errorf("BOM before a quoted header: %d %s; want gina imported", r.Status, r.Body)
		}

		// CR-only line endings: the whole file is one line.
		r, _ = post("username,password_hash,email\rhank," + h + ",hank@example.com\rivy," + h + ",ivy@example.com\r")
		wantAdminError(t, "CR-only line endings", r, http.StatusBadRequest, "invalid_request")
		if strings.Contains(string(r.Body), "example.com") {
			t.Errorf("CR-only line endings: the answer repeats the input: %s", r.Body)
		}
	})
}
