package identity

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzImportSources reads arbitrary input as JSON Lines and as CSV, as
// Import does: no panic, line numbers only grow, every user returned is
// valid (username, hash, roles), and every reason is short fixed text.
func FuzzImportSources(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password_hash":"$2a$04$Fh8cPALG6Ye/BJ815su9te8O2HlIUv8OU8lD0Em9LvqdWz5tIVxTq","roles":["a"]}` + "\n",
		"username,password_hash,roles,disabled\nalice,$2a$04$Fh8cPALG6Ye/BJ815su9te8O2HlIUv8OU8lD0Em9LvqdWz5tIVxTq,a b,1\n",
		"\uFEFFUsername,Hashed_Password\r\nbob,\"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$PL01amPyeUuxG7H0vIr5X+qHkZvWnHmGBGXFYvh8z2E\"\r\n",
		"username,password_hash\n\"a\nb\",x\nc,\"d\n",
		"username,password_hash\na,b,c\n\n,\n",
		"{}\n[]\n\x00\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		check := func(format string, src importSource) {
			last := 0
			for range 10000 {
				p, err := src.next()
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					return // the import stops
				}
				if p.line < last || p.line < 1 {
					t.Fatalf("%s: line %d after %d", format, p.line, last)
				}
				last = p.line
				if p.user != nil {
					if ValidateNewUsername(p.user.Username) != nil || ValidateHash(p.user.PasswordHash) != nil || p.failed != "" {
						t.Fatalf("%s: an invalid user passed: %+v", format, p)
					}
					if _, err := ValidateRoles(p.user.Roles); err != nil {
						t.Fatalf("%s: invalid roles passed: %q", format, p.user.Roles)
					}
					continue
				}
				if p.failed == "" || len(p.failed) > 200 || !utf8.ValidString(p.failed) || strings.ContainsFunc(p.failed, unicode.IsControl) {
					t.Fatalf("%s: reason %q", format, p.failed)
				}
			}
			t.Fatalf("%s: more than 10000 records", format)
		}
		check("jsonl", &jsonLines{lines: &lineReader{r: bufio.NewReaderSize(strings.NewReader(in), 64<<10), max: maxImportLine}})
		if c, err := newCSVRecords(bytes.NewReader([]byte(in))); err == nil {
			check("csv", c)
		}
	})
}
