package identity_test

import (
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// TestImportCSV: a CSV export of a FastAPI tutorial users table (its
// column names, a byte order mark, CRLF line ends, booleans as 1/0,
// columns Portcullis does not keep) imports as JSON Lines would, line by
// line, with the same checks and reasons, and a quoted field may hold a
// comma.
func TestImportCSV(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	ctx := t.Context()
	input := "\uFEFFusername,email,full_name,disabled,hashed_password,Roles\r\n" +
		"johndoe,johndoe@example.com,John Doe,0," + bcrypt2b12 + ",\"items:read,me\"\r\n" +
		"alice,alice@example.com,\"Wonderson, Alice\",1," + bcrypt2y10 + ",reader admin\r\n" +
		"\r\n" +
		"bob,,,false," + bcrypt2a04 + ",\r\n" +
		"JohnDoe,,,0," + bcrypt2a04 + ",\r\n" +
		"carl,,,maybe," + bcrypt2a04 + ",\r\n" +
		"dora,,,0,plaintext,\r\n" +
		"x,,,0," + bcrypt2a04 + ",\r\n" +
		"erin,,0," + bcrypt2a04 + ",\r\n" +
		"fred,\"bad \"quote,,0," + bcrypt2a04 + ",\r\n" +
		"gus,,,TRUE," + bcrypt2a04 + ",bad!role\r\n" +
		"hana,,,," + bcrypt2a04 + ",\r\n"
	report, err := s.Import(ctx, strings.NewReader(input), identity.ImportOptions{Format: identity.ImportCSV, BatchSize: 3})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	want := []identity.ImportLineResult{
		{Line: 2, Username: "johndoe", Outcome: identity.ImportImported},
		{Line: 3, Username: "alice", Outcome: identity.ImportImported},
		{Line: 5, Username: "bob", Outcome: identity.ImportImported},
		{Line: 6, Username: "JohnDoe", Outcome: identity.ImportFailed, Reason: "the username is on line 2 already"},
		{Line: 7, Username: "carl", Outcome: identity.ImportFailed, Reason: "disabled must be true, false, 1, 0 or empty"},
		{Line: 8, Username: "dora", Outcome: identity.ImportFailed, Reason: "invalid password_hash: neither a bcrypt ($2a$, $2b$, $2y$) nor an argon2id PHC hash"},
		{Line: 9, Outcome: identity.ImportFailed, Reason: "invalid username: must be 3 to 64 characters long"},
		{Line: 10, Outcome: identity.ImportFailed, Reason: "the line has 5 fields, the header 6"},
		{Line: 11, Outcome: identity.ImportFailed, Reason: "not a valid CSV line (quotes)"},
		{Line: 12, Username: "gus", Outcome: identity.ImportFailed, Reason: "invalid roles: a role is 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"},
		{Line: 13, Username: "hana", Outcome: identity.ImportImported},
	}
	checkReport(t, report, want)
	if strings.Join(report.IgnoredColumns, ",") != "email,full_name" {
		t.Errorf("ignored columns %q, want email and full_name", report.IgnoredColumns)
	}
	john, err := store.GetUserByUsername(ctx, "johndoe")
	if err != nil {
		t.Fatal(err)
	}
	if john.PasswordHash != bcrypt2b12 || strings.Join(john.Roles, ",") != "items:read,me" || john.Disabled {
		t.Errorf("johndoe stored as %+v", john)
	}
	if alice, _ := store.GetUserByUsername(ctx, "alice"); alice == nil || !alice.Disabled || strings.Join(alice.Roles, ",") != "admin,reader" {
		t.Errorf("alice stored as %+v", alice)
	}
	if _, err := s.Authenticate(ctx, "johndoe", "correct horse battery staple", testIP); err != nil {
		t.Errorf("johndoe's imported bcrypt hash does not log in: %v", err)
	}

	// A header that lacks a required column, or names one twice, stops
	// the import before any line, as invalid input.
	for _, header := range []string{"user,password_hash\n", "username,hash\n", "username,password_hash,hashed_password\n", "", "\"unclosed\n"} {
		report, err := s.Import(ctx, strings.NewReader(header+"zoe,"+bcrypt2a04+"\n"), identity.ImportOptions{Format: identity.ImportCSV})
		if apperr.CodeOf(err) != apperr.EInvalid || report.StoppedAtLine != 1 || len(report.Lines) != 0 {
			t.Errorf("header %q: err %v, report %+v; want invalid_request, stopped at line 1", header, err, report)
		}
	}
	if _, err := store.GetUserByUsername(ctx, "zoe"); err == nil {
		t.Error("zoe was imported under a bad header")
	}
	// A line longer than the bound stops the import there.
	long := "username,password_hash\nkim," + bcrypt2a04 + "\nlou," + strings.Repeat("a", 70<<10) + "\n"
	report, err = s.Import(ctx, strings.NewReader(long), identity.ImportOptions{Format: identity.ImportCSV, BatchSize: 1})
	if apperr.CodeOf(err) != apperr.EInvalid || report.Imported != 1 || report.StoppedAtLine != 3 {
		t.Errorf("long line: err %v, report %+v; want invalid_request after kim, stopped at line 3", err, report)
	}
	if _, err := s.Import(ctx, strings.NewReader(""), identity.ImportOptions{Format: "xml"}); apperr.CodeOf(err) != apperr.EInvalid {
		t.Errorf("format xml: %v, want invalid_request", err)
	}
}
