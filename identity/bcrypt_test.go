package identity_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/storage"
)

// Vectors made by passlib 1.7.4 (bcrypt backend 3.2.2), as a FastAPI
// application stores them:
//
//	from passlib.hash import bcrypt
//	bcrypt.hash("correct horse battery staple")                               # $2b$, cost 12
//	bcrypt.using(ident="2y", rounds=10).hash("Tr0ub4dor&3 is long enough")
//	bcrypt.using(ident="2a", rounds=4).hash("pässwörd with umlauts")
//	bcrypt.using(rounds=4).hash("x"*72 + "tail ignored by bcrypt")
//	bcrypt.using(rounds=15).hash("too expensive to check")
const (
	bcrypt2b12   = "$2b$12$fBzHU96Vq96SnorseWGdsebz3tNKhmrC7BYlF7Fr9RBpDyh1VSZTi"
	bcrypt2y10   = "$2y$10$NQhdRbWxbL5dCNjIGmhKw.kfwGr6qQoSdAwUPReRiTLBde.R54LRK"
	bcrypt2a04   = "$2a$04$Fh8cPALG6Ye/BJ815su9te8O2HlIUv8OU8lD0Em9LvqdWz5tIVxTq"
	bcryptLong   = "$2b$04$P.A3Bplb1RkG3eBNiVHcZOIMDhqE0LycvAxGEN7u.znof5XvBwvsO"
	bcryptCost15 = "$2b$15$aMVGakdFeYpUrio8XVfwg.Am8ZuS7h8.BPavEVBhSKMHzQ75K4Y2y"
)

func TestVerifyBcryptPasslibVectors(t *testing.T) {
	h := identity.NewPasswordHasher(cheapParams())
	for _, tc := range []struct {
		name, hash, password string
		want                 bool
	}{
		{"2b cost 12", bcrypt2b12, "correct horse battery staple", true},
		{"2b cost 12 wrong", bcrypt2b12, "correct horse battery stapl", false},
		{"2y cost 10", bcrypt2y10, "Tr0ub4dor&3 is long enough", true},
		{"2y cost 10 wrong", bcrypt2y10, "tr0ub4dor&3 is long enough", false},
		{"2a cost 4 UTF-8", bcrypt2a04, "pässwörd with umlauts", true},
		{"2a cost 4 other normalisation", bcrypt2a04, "pa\u0308sswo\u0308rd with umlauts", false},
		// bcrypt reads 72 bytes; passlib truncates, and so must we.
		{"beyond 72 bytes, same", bcryptLong, strings.Repeat("x", 72) + "tail ignored by bcrypt", true},
		{"beyond 72 bytes, other tail", bcryptLong, strings.Repeat("x", 72) + "another tail", true},
		{"71 bytes", bcryptLong, strings.Repeat("x", 71), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tc.password, tc.hash)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tc.want || rehash != tc.want {
				t.Errorf("Verify = ok %t, needsRehash %t; want %t, %t (a matching bcrypt hash always needs a rehash)", ok, rehash, tc.want, tc.want)
			}
		})
	}
}

func TestParseBcrypt(t *testing.T) {
	for _, tc := range []struct {
		hash string
		cost int
	}{{bcrypt2b12, 12}, {bcrypt2y10, 10}, {bcrypt2a04, 4}} {
		cost, err := identity.ParseBcrypt(tc.hash)
		if err != nil || cost != tc.cost {
			t.Errorf("ParseBcrypt(%.7s…) = %d, %v; want %d", tc.hash, cost, err, tc.cost)
		}
		if err := identity.ValidateHash(tc.hash); err != nil {
			t.Errorf("ValidateHash(%.7s…) = %v", tc.hash, err)
		}
	}
	for _, tc := range []struct{ name, hash, detail string }{
		{"cost 15", bcryptCost15, "cost 15 out of range [4, 14]"},
		{"cost 03", "$2b$03$" + bcrypt2b12[7:], "cost 3 out of range"},
		{"2x prefix", "$2x$" + bcrypt2b12[4:], "not a $2a$, $2b$ or $2y$"},
		{"2 prefix", "$2$12$" + bcrypt2b12[7:] + "x", "not a $2a$"},
		{"short", bcrypt2b12[:59], "not 60 characters"},
		{"long", bcrypt2b12 + ".", "not 60 characters"},
		{"cost letters", "$2b$1a$" + bcrypt2b12[7:], "two decimal digits"},
		{"no separator", "$2b$12." + bcrypt2b12[7:], "two decimal digits"},
		{"alphabet", bcrypt2b12[:20] + "+" + bcrypt2b12[21:], "alphabet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := identity.ParseBcrypt(tc.hash)
			if !errors.Is(err, identity.ErrMalformedHash) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("ParseBcrypt = %v; want ErrMalformedHash with %q", err, tc.detail)
			}
			if strings.Contains(err.Error(), tc.hash[7:]) {
				t.Errorf("error %q repeats the hash", err)
			}
			if err := identity.ValidateHash(tc.hash); !errors.Is(err, identity.ErrMalformedHash) {
				t.Errorf("ValidateHash = %v; want ErrMalformedHash", err)
			}
		})
	}
}

// A cost-15 bcrypt hash would take seconds; it is refused before any work.
func TestVerifyBcryptCostOutOfBoundsDoesNoWork(t *testing.T) {
	h := identity.NewPasswordHasher(cheapParams())
	start := time.Now()
	ok, _, err := h.Verify("too expensive to check", bcryptCost15)
	if ok || !errors.Is(err, identity.ErrMalformedHash) {
		t.Fatalf("Verify = %t, %v; want ErrMalformedHash", ok, err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("Verify of a refused hash took %s; a cost-15 check takes seconds", d)
	}
}

// createWithHash stores a user with the given hash as an import would.
func createWithHash(t *testing.T, store *storage.Store, id, username, hash string) {
	t.Helper()
	if err := store.CreateUser(t.Context(), &identity.User{ID: id, Username: username, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticateRehashesBcryptToArgon2id(t *testing.T) {
	for _, hash := range []struct{ name, hash, password string }{
		{"2b", bcrypt2b12, "correct horse battery staple"},
		{"2y", bcrypt2y10, "Tr0ub4dor&3 is long enough"},
	} {
		t.Run(hash.name, func(t *testing.T) {
			s, store, _ := newService(t, identity.LockoutPolicy{})
			createWithHash(t, store, "u1", "alice", hash.hash)
			ctx := t.Context()

			if _, err := s.Authenticate(ctx, "alice", hash.password+"!", testIP); !errors.Is(err, identity.ErrInvalidCredentials) {
				t.Fatalf("wrong password: %v; want ErrInvalidCredentials", err)
			}
			if got := getUser(t, store, "u1").PasswordHash; got != hash.hash {
				t.Fatalf("a failed login changed the stored hash")
			}
			u, err := s.Authenticate(ctx, "alice", hash.password, testIP)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			stored := getUser(t, store, "u1").PasswordHash
			if !strings.HasPrefix(stored, "$argon2id$v=19$m=64,t=1,p=1$") || u.PasswordHash != stored {
				t.Fatalf("after login the stored hash is %.20s…, returned %.20s…; want argon2id with the hasher's parameters", stored, u.PasswordHash)
			}
			ok, rehash, err := s.Hasher.Verify(hash.password, stored)
			if !ok || rehash || err != nil {
				t.Fatalf("Verify(upgraded) = %t, %t, %v", ok, rehash, err)
			}
			if _, err := s.Authenticate(ctx, "alice", hash.password, testIP); err != nil {
				t.Fatalf("second login: %v", err)
			}
			if again := getUser(t, store, "u1").PasswordHash; again != stored {
				t.Errorf("the second login rehashed again")
			}
		})
	}
}

func TestAuthenticateBcryptCostOutOfBoundsIsUnusable(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	var logs bytes.Buffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	createWithHash(t, store, "u1", "alice", bcryptCost15)
	_, err := s.Authenticate(t.Context(), "alice", "too expensive to check", testIP)
	if !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("Authenticate = %v; want ErrInvalidCredentials", err)
	}
	if n := strings.Count(logs.String(), "stored password hash is unusable"); n != 1 {
		t.Errorf("logged %d times that the hash is unusable; want once:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), bcryptCost15[7:]) {
		t.Errorf("the log repeats the hash")
	}
	if getUser(t, store, "u1").PasswordHash != bcryptCost15 {
		t.Errorf("the unusable hash was replaced")
	}
}

// failingStore fails CreateUser from its failAt-th call on.
type failingStore struct {
	*storage.Store
	calls, failAt int
}

func (f *failingStore) CreateUser(ctx context.Context, u *identity.User) error {
	f.calls++
	if f.calls >= f.failAt {
		return apperr.ErrUnavailable
	}
	return f.Store.CreateUser(ctx, u)
}

func importLines(lines ...string) *strings.Reader {
	return strings.NewReader(strings.Join(lines, "\n") + "\n")
}

func TestImport(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	ctx := t.Context()
	signup(t, s, "existing")
	argon, err := identity.NewPasswordHasher(cheapParams()).Hash("an argon2id user's password")
	if err != nil {
		t.Fatal(err)
	}
	input := []string{
		`{"username":"alice","password_hash":"` + bcrypt2b12 + `","roles":["admin","admin","reader"]}`,
		`{"username":"bob","password_hash":"` + bcrypt2y10 + `","disabled":true}`,
		``,
		`{"username":"carol","password_hash":"` + argon + `","roles":[]}`,
		`{"username":"Existing","password_hash":"` + bcrypt2a04 + `"}`,
		`{"username":"ALICE","password_hash":"` + bcrypt2a04 + `"}`,
		`{"username":"dave","password_hash":"` + bcryptCost15 + `"}`,
		`{"username":"erin","password_hash":"$2x$` + bcrypt2b12[4:] + `"}`,
		`{"username":"frank","password_hash":"$argon2id$v=19$m=2097152,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}`,
		`{"username":"gina","password_hash":"plaintext-password"}`,
		`{"username":"x","password_hash":"` + bcrypt2a04 + `"}`,
		`{"username":"hank","password_hash":"` + bcrypt2a04 + `","roles":["bad role"]}`,
		`{"username":"ivan","password_hash":"` + bcrypt2a04 + `","admin":true}`,
		`{"username":"jill","password_hash":"` + bcrypt2a04 + `","username":"root"}`,
		`{"username":"kate","password_hash":"` + bcrypt2a04 + `"`,
		`{"username":"lena","password_hash":42}`,
		`{"password_hash":"` + bcrypt2a04 + `"}`,
		`["mike"]`,
		`{"username":"nina","password_hash":"` + bcrypt2a04 + `"} {}`,
		`{"username":"oscar","password_hash":"` + bcrypt2a04 + "\"}\r",
	}
	report, err := s.Import(ctx, importLines(input...), identity.ImportOptions{BatchSize: 3})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	want := []identity.ImportLineResult{
		{Line: 1, Username: "alice", Outcome: identity.ImportImported},
		{Line: 2, Username: "bob", Outcome: identity.ImportImported},
		{Line: 4, Username: "carol", Outcome: identity.ImportImported},
		{Line: 5, Username: "Existing", Outcome: identity.ImportSkipped, Reason: "the user exists"},
		{Line: 6, Username: "ALICE", Outcome: identity.ImportFailed, Reason: "the username is on line 1 already"},
		{Line: 7, Username: "dave", Outcome: identity.ImportFailed, Reason: "invalid password_hash: bcrypt cost 15 out of range [4, 14]"},
		{Line: 8, Username: "erin", Outcome: identity.ImportFailed, Reason: "invalid password_hash: not a $2a$, $2b$ or $2y$ bcrypt hash"},
		{Line: 9, Username: "frank", Outcome: identity.ImportFailed, Reason: "invalid password_hash: not an argon2id v=19 PHC string with parameters within the accepted bounds"},
		{Line: 10, Username: "gina", Outcome: identity.ImportFailed, Reason: "invalid password_hash: neither a bcrypt ($2a$, $2b$, $2y$) nor an argon2id PHC hash"},
		{Line: 11, Outcome: identity.ImportFailed, Reason: "invalid username: must be 3 to 64 characters long"},
		{Line: 12, Username: "hank", Outcome: identity.ImportFailed, Reason: "invalid roles: a role is 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"},
		{Line: 13, Outcome: identity.ImportFailed, Reason: "unknown member: the members are username, password_hash, roles and disabled"},
		{Line: 14, Outcome: identity.ImportFailed, Reason: `member "username" appears twice`},
		{Line: 15, Outcome: identity.ImportFailed, Reason: "not a JSON object"},
		{Line: 16, Username: "lena", Outcome: identity.ImportFailed, Reason: `member "password_hash" has the wrong type`},
		{Line: 17, Outcome: identity.ImportFailed, Reason: "username is missing"},
		{Line: 18, Outcome: identity.ImportFailed, Reason: "not a JSON object"},
		{Line: 19, Outcome: identity.ImportFailed, Reason: "more than one JSON value on the line"},
		{Line: 20, Username: "oscar", Outcome: identity.ImportImported},
	}
	checkReport(t, report, want)
	if report.Imported != 4 || report.Skipped != 1 || report.Failed != 14 || report.Updated != 0 || report.StoppedAtLine != 0 {
		t.Errorf("counts = %+v", report)
	}
	alice, err := store.GetUserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if alice.PasswordHash != bcrypt2b12 || strings.Join(alice.Roles, ",") != "admin,reader" || alice.Disabled {
		t.Errorf("alice stored as %+v", alice)
	}
	if bob, _ := store.GetUserByUsername(ctx, "bob"); bob == nil || !bob.Disabled {
		t.Errorf("bob was not stored disabled: %+v", bob)
	}
	if _, err := s.Authenticate(ctx, "carol", "an argon2id user's password", testIP); err != nil {
		t.Errorf("carol's imported argon2id hash does not log in: %v", err)
	}
	users, err := store.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 5 {
		t.Errorf("%d users stored; want existing plus 4 imported", len(users))
	}

	// Again: every valid line is skipped, nothing is duplicated.
	again, err := s.Import(ctx, importLines(input...), identity.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Imported != 0 || again.Skipped != 5 || again.Failed != 14 {
		t.Errorf("second run = imported %d, skipped %d, failed %d; want 0, 5, 14", again.Imported, again.Skipped, again.Failed)
	}
	if users, _ := store.ListUsers(ctx); len(users) != 5 {
		t.Errorf("%d users after the second run; want 5", len(users))
	}
}

func checkReport(t *testing.T, report *identity.ImportReport, want []identity.ImportLineResult) {
	t.Helper()
	if len(report.Lines) != len(want) {
		t.Errorf("%d lines reported; want %d: %+v", len(report.Lines), len(want), report.Lines)
	}
	for i := range min(len(want), len(report.Lines)) {
		if report.Lines[i] != want[i] {
			t.Errorf("line result %d = %+v; want %+v", i, report.Lines[i], want[i])
		}
	}
}

func TestImportUpdate(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	ctx := t.Context()
	first := `{"username":"alice","password_hash":"` + bcrypt2b12 + `","roles":["reader"]}`
	if _, err := s.Import(ctx, importLines(first), identity.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := `{"username":"Alice","password_hash":"` + bcrypt2a04 + `","roles":["admin"],"disabled":true}`
	report, err := s.Import(ctx, importLines(changed), identity.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, report, []identity.ImportLineResult{{Line: 1, Username: "Alice", Outcome: identity.ImportSkipped, Reason: "the user exists"}})
	report, err = s.Import(ctx, importLines(changed), identity.ImportOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, report, []identity.ImportLineResult{{Line: 1, Username: "Alice", Outcome: identity.ImportUpdated}})
	u, err := store.GetUserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.PasswordHash != bcrypt2a04 || strings.Join(u.Roles, ",") != "admin" || !u.Disabled {
		t.Errorf("after --update: %+v", u)
	}
	report, err = s.Import(ctx, importLines(changed), identity.ImportOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, report, []identity.ImportLineResult{{Line: 1, Username: "Alice", Outcome: identity.ImportSkipped,
		Reason: "the user exists with this hash, roles and disabled state"}})
	if users, _ := store.ListUsers(ctx); len(users) != 1 {
		t.Errorf("%d users; want 1", len(users))
	}
}

// A storage error rolls its whole batch back and stops the import; the
// batches before it stay, and re-running completes the import.
func TestImportStorageErrorAbortsBatch(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	ctx := t.Context()
	var lines []string
	for _, name := range []string{"user01", "user02", "user03", "user04", "user05", "user06", "user07"} {
		lines = append(lines, `{"username":"`+name+`","password_hash":"`+bcrypt2a04+`"}`)
	}
	lines[3] = `{"username":"broken"}`
	// Batches of 3: lines 1-3, 4-6, 7. The 5th CreateUser (line 6) fails.
	s.Store = &failingStore{Store: store, failAt: 5}
	report, err := s.Import(ctx, importLines(lines...), identity.ImportOptions{BatchSize: 3})
	if !errors.Is(err, apperr.ErrUnavailable) || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("Import error = %v; want ErrUnavailable naming line 4", err)
	}
	if report.StoppedAtLine != 4 || report.Imported != 3 || len(report.Lines) != 3 {
		t.Errorf("report = %+v; want lines 1-3 imported, stopped at line 4", report)
	}
	users, err := store.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	if strings.Join(names, ",") != "user01,user02,user03" {
		t.Errorf("stored %v; want the first batch only (user05 of the failed batch rolled back)", names)
	}

	s.Store = store
	report, err = s.Import(ctx, importLines(lines...), identity.ImportOptions{BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if report.Imported != 3 || report.Skipped != 3 || report.Failed != 1 {
		t.Errorf("re-run = %+v; want 3 imported, 3 skipped, 1 failed", report)
	}
}

func TestImportLongLine(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	long := `{"username":"alice","password_hash":"` + bcrypt2a04 + `","roles":["` + strings.Repeat("a", 70000) + `"]}`
	report, err := s.Import(t.Context(), importLines(long, `{"username":"bob","password_hash":"`+bcrypt2a04+`"}`), identity.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, report, []identity.ImportLineResult{
		{Line: 1, Outcome: identity.ImportFailed, Reason: "line is longer than 65536 bytes"},
		{Line: 2, Username: "bob", Outcome: identity.ImportImported},
	})
	if _, err := store.GetUserByUsername(t.Context(), "bob"); err != nil {
		t.Error(err)
	}
}
