package identity

import (
	_ "embed"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// commonPasswords is a read-only list of common passwords: lower case, one
// per line, each line ending in a newline, sorted bytewise, no duplicates.
//
//go:embed commonpasswords.txt
var commonPasswords string

// Password length defaults, from OWASP ASVS 4.0 2.1.1 (at least 12) and
// 2.1.2 (at least 64 permitted, more than 128 denied).
const (
	// DefaultMinPasswordLength is used when PasswordPolicy.MinLength is 0 or less.
	DefaultMinPasswordLength = 12
	// DefaultMaxPasswordLength is used when PasswordPolicy.MaxLength is 0 or less.
	DefaultMaxPasswordLength = 128
)

// Username length bounds, in characters (usernames are ASCII).
const (
	minUsernameLength = 3
	maxUsernameLength = 64
)

// PolicyError reports every rule an input such as a username or password
// breaks. Problems are short phrases suitable for showing to the user, such
// as "must be at least 12 characters long".
type PolicyError struct {
	// Field names the rejected input: "username" from ValidateUsername,
	// "password" from PasswordPolicy.Validate.
	Field string
	// Problems lists each broken rule, in a stable order.
	Problems []string
}

// Error returns the field and its problems, for example
// "invalid password: must be at least 12 characters long; is too common".
func (e *PolicyError) Error() string {
	return "invalid " + e.Field + ": " + strings.Join(e.Problems, "; ")
}

// PasswordPolicy holds the rules for new passwords, following NIST SP
// 800-63B section 5.1.1.2 and OWASP ASVS 4.0 section 2.1: length bounds,
// no username, no common passwords, and no composition rules (ASVS 2.1.9).
// The zero value applies the defaults.
type PasswordPolicy struct {
	// MinLength is the minimum length in Unicode code points.
	// Default (when 0 or less): DefaultMinPasswordLength, 12.
	MinLength int
	// MaxLength is the maximum length in Unicode code points.
	// Default (when 0 or less): DefaultMaxPasswordLength, 128.
	MaxLength int
}

// DefaultPasswordPolicy returns the policy with both lengths set to their
// defaults, 12 to 128 code points.
func DefaultPasswordPolicy() PasswordPolicy {
	return PasswordPolicy{MinLength: DefaultMinPasswordLength, MaxLength: DefaultMaxPasswordLength}
}

// Validate checks a new password for the user named username (which may be
// empty). It returns nil if the password is acceptable, or a *PolicyError
// with Field "password" listing every rule it breaks:
//
//   - it must be valid UTF-8 and must not contain NUL;
//   - its length in Unicode code points must be within MinLength..MaxLength;
//   - it must not equal or contain the username, ignoring case;
//   - it must not be in the embedded list of common passwords, ignoring case.
//
// Validate applies no composition rules (upper case, digits, symbols).
// Passwords are not normalized; they are hashed as given.
func (p PasswordPolicy) Validate(password, username string) error {
	minLen, maxLen := p.MinLength, p.MaxLength
	if minLen <= 0 {
		minLen = DefaultMinPasswordLength
	}
	if maxLen <= 0 {
		maxLen = DefaultMaxPasswordLength
	}
	var problems []string
	if !utf8.ValidString(password) {
		problems = append(problems, "must be valid UTF-8")
	}
	if strings.IndexByte(password, 0) >= 0 {
		problems = append(problems, "must not contain NUL characters")
	}
	switch n := utf8.RuneCountInString(password); {
	case n < minLen:
		problems = append(problems, fmt.Sprintf("must be at least %d characters long", minLen))
	case n > maxLen:
		problems = append(problems, fmt.Sprintf("must be at most %d characters long", maxLen))
	}
	lower := strings.ToLower(password)
	if u := NormalizeUsername(username); u != "" {
		switch {
		case lower == u:
			problems = append(problems, "must not be the username")
		case strings.Contains(lower, u):
			problems = append(problems, "must not contain the username")
		}
	}
	if isCommonPassword(lower) {
		problems = append(problems, "is too common")
	}
	if len(problems) > 0 {
		return &PolicyError{Field: "password", Problems: problems}
	}
	return nil
}

// isCommonPassword reports whether the lower-cased password is in the
// embedded list.
func isCommonPassword(lower string) bool {
	if lower == "" || strings.ContainsAny(lower, "\r\n") {
		return false
	}
	// A linear scan of ~20 KB: cheap next to argon2, and needs no index.
	return strings.HasPrefix(commonPasswords, lower+"\n") ||
		strings.Contains(commonPasswords, "\n"+lower+"\n")
}

// NormalizeUsername returns the canonical form of a username, used for
// case-insensitive uniqueness: the name with ASCII letters in lower case and
// every other byte unchanged. It is the one normalization: usernames are
// ASCII (ValidateUsername), so no Unicode case folding applies ("ALİCE" or
// a Kelvin sign never match "alice"), and stores compare the normalized
// form byte for byte (no trailing-space padding). It does not validate.
func NormalizeUsername(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ValidateNewUsername checks the name of a new account: ValidateUsername's
// rules, and the name must not be shaped like a user ID (any spelling of a
// UUID that those rules admit, such as 8-4-4-4-12 or 32 hex digits in
// either case), so that no name can be mistaken for another user's ID.
// It returns nil or a *PolicyError with Field "username".
func ValidateNewUsername(s string) error {
	if err := ValidateUsername(s); err != nil {
		return err
	}
	if IDShaped(s) {
		return &PolicyError{Field: "username", Problems: []string{"must not have the form of a user ID"}}
	}
	return nil
}

// IDShaped reports whether s has the form of a user ID: anything
// uuid.Parse accepts.
func IDShaped(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}

// ValidateUsername checks a username. It returns nil if s is acceptable,
// or a *PolicyError with Field "username" listing every rule it breaks: 3
// to 64 characters; only ASCII letters, digits, '.', '_', '-' and '@' (so
// e-mail addresses work); starting with a letter or digit. Case is kept;
// compare usernames with NormalizeUsername. Logins check names with it;
// new accounts with ValidateNewUsername.
func ValidateUsername(s string) error {
	var problems []string
	if n := utf8.RuneCountInString(s); n < minUsernameLength || n > maxUsernameLength {
		problems = append(problems, fmt.Sprintf("must be %d to %d characters long", minUsernameLength, maxUsernameLength))
	}
	for i := 0; i < len(s); i++ {
		if !isUsernameByte(s[i]) {
			problems = append(problems, "must contain only ASCII letters, digits, '.', '_', '-' and '@'")
			break
		}
	}
	if s != "" && !isASCIIAlnum(s[0]) {
		problems = append(problems, "must start with a letter or digit")
	}
	if len(problems) > 0 {
		return &PolicyError{Field: "username", Problems: problems}
	}
	return nil
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isUsernameByte(c byte) bool {
	return isASCIIAlnum(c) || c == '.' || c == '_' || c == '-' || c == '@'
}
