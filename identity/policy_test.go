package identity

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPasswordPolicyValidate(t *testing.T) {
	tests := []struct {
		name     string
		policy   PasswordPolicy
		password string
		username string
		want     []string // nil means valid
	}{
		{"good passphrase", PasswordPolicy{}, "correct horse battery stapler", "alice", nil},
		{"exactly minimum", PasswordPolicy{}, "tr0ub4dor&3x", "alice", nil},
		{"exactly maximum", PasswordPolicy{}, strings.Repeat("xy", 64), "alice", nil},
		{"no composition rules", PasswordPolicy{}, "all lower case words", "", nil},
		{"empty username ignored", PasswordPolicy{}, "horse battery staple", "", nil},
		{"too short", PasswordPolicy{}, "kq8#zv!", "alice",
			[]string{"must be at least 12 characters long"}},
		{"empty", PasswordPolicy{}, "", "alice",
			[]string{"must be at least 12 characters long"}},
		{"too long", PasswordPolicy{}, strings.Repeat("x", 129), "alice",
			[]string{"must be at most 128 characters long"}},
		{"custom bounds ok", PasswordPolicy{MinLength: 8, MaxLength: 10}, "kq8#zv!m", "alice", nil},
		{"custom minimum", PasswordPolicy{MinLength: 20}, "horse battery staple", "alice", nil},
		{"custom minimum short", PasswordPolicy{MinLength: 21}, "horse battery staple", "alice",
			[]string{"must be at least 21 characters long"}},
		{"custom maximum", PasswordPolicy{MinLength: 8, MaxLength: 10}, "kq8#zv!mnop", "alice",
			[]string{"must be at most 10 characters long"}},
		{"negative means default", PasswordPolicy{MinLength: -1, MaxLength: -1}, "kq8#zv!", "alice",
			[]string{"must be at least 12 characters long"}},
		// 12 code points, 24 bytes: counts as long enough.
		{"code points not bytes", PasswordPolicy{}, "ééééééééééé1", "alice", nil},
		// 11 code points, 33 bytes: too short although 33 bytes.
		{"code points not bytes short", PasswordPolicy{}, "日本語日本語日本語日本", "alice",
			[]string{"must be at least 12 characters long"}},
		{"emoji code points", PasswordPolicy{MaxLength: 12}, strings.Repeat("🔑", 12), "alice", nil},
		{"equal to username", PasswordPolicy{MinLength: 8}, "alice.smith", "alice.smith",
			[]string{"must not be the username"}},
		{"equal to username ignoring case", PasswordPolicy{MinLength: 8}, "Alice.Smith", "ALICE.smith",
			[]string{"must not be the username"}},
		{"contains username", PasswordPolicy{}, "my name is Alice, hi!", "alice",
			[]string{"must not contain the username"}},
		{"common password", PasswordPolicy{MinLength: 8}, "password", "alice",
			[]string{"is too common"}},
		{"common password ignoring case", PasswordPolicy{}, "QwertyUIOP123", "alice",
			[]string{"is too common"}},
		{"common first entry", PasswordPolicy{MinLength: 1}, firstCommonPassword(t), "alice",
			[]string{"is too common"}},
		{"common with spaces", PasswordPolicy{}, "correct horse battery staple", "alice",
			[]string{"is too common"}},
		{"common short and username", PasswordPolicy{}, "letmein", "letmein",
			[]string{"must be at least 12 characters long", "must not be the username", "is too common"}},
		{"not common with suffix", PasswordPolicy{}, "password123456x", "alice", nil},
		{"newline does not span list entries", PasswordPolicy{}, "password\n123456", "alice", nil},
		{"NUL", PasswordPolicy{}, "correct horse\x00battery", "alice",
			[]string{"must not contain NUL characters"}},
		{"invalid UTF-8", PasswordPolicy{}, "correct horse \xff\xfe battery", "alice",
			[]string{"must be valid UTF-8"}},
		{"everything wrong", PasswordPolicy{}, "bob\x00\xff", "bob",
			[]string{"must be valid UTF-8", "must not contain NUL characters", "must be at least 12 characters long", "must not contain the username"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate(tt.password, tt.username)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate(%q, %q) = %v, want nil", tt.password, tt.username, err)
				}
				return
			}
			pe, ok := errors.AsType[*PolicyError](err)
			if !ok {
				t.Fatalf("Validate(%q, %q) = %v, want *PolicyError", tt.password, tt.username, err)
			}
			if pe.Field != "password" {
				t.Errorf("Field = %q, want %q", pe.Field, "password")
			}
			if !slices.Equal(pe.Problems, tt.want) {
				t.Errorf("Problems = %q, want %q", pe.Problems, tt.want)
			}
		})
	}
}

func TestDefaultPasswordPolicy(t *testing.T) {
	p := DefaultPasswordPolicy()
	if p.MinLength != 12 || p.MaxLength != 128 {
		t.Errorf("DefaultPasswordPolicy() = %+v, want 12..128", p)
	}
	// The zero value behaves the same.
	for _, pw := range []string{"short", strings.Repeat("x", 129), "correct horse battery stapler"} {
		a, b := p.Validate(pw, "u"), PasswordPolicy{}.Validate(pw, "u")
		if (a == nil) != (b == nil) || a != nil && a.Error() != b.Error() {
			t.Errorf("Validate(%q): default %v, zero value %v", pw, a, b)
		}
	}
}

func TestValidateUsername(t *testing.T) {
	const (
		badLength = "must be 3 to 64 characters long"
		badChars  = "must contain only ASCII letters, digits, '.', '_', '-' and '@'"
		badStart  = "must start with a letter or digit"
	)
	tests := []struct {
		name     string
		username string
		want     []string // nil means valid
	}{
		{"simple", "alice", nil},
		{"mixed case", "Alice", nil},
		{"minimum length", "bob", nil},
		{"maximum length", strings.Repeat("a", 64), nil},
		{"email with plus", "alice.smith+x@example.com", []string{badChars}},
		{"email plain", "alice.smith@example.com", nil},
		{"all allowed punctuation", "a.b_c-d@e", nil},
		{"starts with digit", "007bond", nil},
		{"empty", "", []string{badLength}},
		{"too short", "ab", []string{badLength}},
		{"too long", strings.Repeat("a", 65), []string{badLength}},
		{"space", "alice smith", []string{badChars}},
		{"non-ASCII letter", "zoë", []string{badChars}},
		{"non-ASCII look-alike", "аlice", []string{badChars, badStart}}, // Cyrillic а
		{"NUL", "alice\x00", []string{badChars}},
		{"invalid UTF-8", "alice\xff", []string{badChars}},
		{"slash", "alice/bob", []string{badChars}},
		{"starts with dot", ".alice", []string{badStart}},
		{"starts with underscore", "_alice", []string{badStart}},
		{"starts with at", "@alice", []string{badStart}},
		{"starts with dash", "-alice", []string{badStart}},
		{"short and bad start", "-a", []string{badLength, badStart}},
		{"everything wrong", "-" + strings.Repeat("ä", 64), []string{badLength, badChars, badStart}},
		{"single bad character", " ", []string{badLength, badChars, badStart}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateUsername(tt.username)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateUsername(%q) = %v, want nil", tt.username, err)
				}
				return
			}
			pe, ok := errors.AsType[*PolicyError](err)
			if !ok {
				t.Fatalf("ValidateUsername(%q) = %v, want *PolicyError", tt.username, err)
			}
			if pe.Field != "username" {
				t.Errorf("Field = %q, want %q", pe.Field, "username")
			}
			if !slices.Equal(pe.Problems, tt.want) {
				t.Errorf("Problems = %q, want %q", pe.Problems, tt.want)
			}
		})
	}
}

func TestNormalizeUsername(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"ALICE.Smith@Example.COM", "alice.smith@example.com"},
		{"a_b-c.d", "a_b-c.d"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := NormalizeUsername(tt.in); got != tt.want {
			t.Errorf("NormalizeUsername(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := NormalizeUsername(NormalizeUsername(tt.in)); got != tt.want {
			t.Errorf("NormalizeUsername is not idempotent on %q: %q", tt.in, got)
		}
	}
}

func TestPolicyErrorError(t *testing.T) {
	tests := []struct {
		err  *PolicyError
		want string
	}{
		{&PolicyError{Field: "password", Problems: []string{"is too common"}},
			"invalid password: is too common"},
		{&PolicyError{Field: "username", Problems: []string{"a", "b"}},
			"invalid username: a; b"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestCommonPasswordsList checks the embedded list's format, which
// isCommonPassword relies on, and that every entry is rejected.
func TestCommonPasswordsList(t *testing.T) {
	onDisk, err := os.ReadFile("commonpasswords.txt")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != commonPasswords {
		t.Fatal("embedded list differs from commonpasswords.txt")
	}
	if !strings.HasSuffix(commonPasswords, "\n") {
		t.Fatal("list does not end with a newline")
	}
	entries := strings.Split(strings.TrimSuffix(commonPasswords, "\n"), "\n")
	if len(entries) < 1000 {
		t.Errorf("list has %d entries, want at least 1000", len(entries))
	}
	if !slices.IsSorted(entries) {
		t.Error("list is not sorted bytewise")
	}
	for i, e := range entries {
		switch {
		case e == "":
			t.Errorf("line %d is empty", i+1)
		case e != strings.ToLower(e):
			t.Errorf("line %d: %q is not lower case", i+1, e)
		case strings.ContainsAny(e, "\r\t\x00") || !utf8.ValidString(e):
			t.Errorf("line %d: %q has a control character or invalid UTF-8", i+1, e)
		case i > 0 && e == entries[i-1]:
			t.Errorf("line %d: %q is a duplicate", i+1, e)
		}
		if !isCommonPassword(e) {
			t.Errorf("isCommonPassword(%q) = false", e)
		}
		err := PasswordPolicy{MinLength: 1}.Validate(strings.ToUpper(e), "")
		if pe, ok := errors.AsType[*PolicyError](err); !ok || !slices.Contains(pe.Problems, "is too common") {
			t.Errorf("Validate(%q) = %v, want is too common", strings.ToUpper(e), err)
		}
	}
}

func firstCommonPassword(t *testing.T) string {
	t.Helper()
	first, _, _ := strings.Cut(commonPasswords, "\n")
	return first
}
