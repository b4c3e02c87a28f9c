package storage

import (
	"errors"
	"fmt"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"
)

// DSN is a parsed Portcullis data source name: "sqlite://PATH" or
// "mysql://" followed by a go-sql-driver/mysql DSN. ParseDSN is the one
// parser: Open and configuration validation both use it.
type DSN struct {
	// Driver is DriverSQLite or DriverMySQL.
	Driver string
	// Path is the SQLite database file (DriverSQLite).
	Path string
	// MySQL is the driver configuration (DriverMySQL), with parseTime
	// set and interpolateParams set unless the DSN turns it off; callers
	// may change their copy.
	MySQL *gomysql.Config
}

// dsnForms is what an error about a DSN suggests instead.
const dsnForms = "want sqlite://PATH or mysql://USER:PASS@tcp(HOST:PORT)/DB?parseTime=true"

// ParseDSN parses and checks dsn. A SQLite DSN must name a file and carry
// no query (storage sets its own pragmas); a MySQL DSN must parse, name a
// database, and not turn parseTime off. Its errors never repeat the DSN
// beyond its scheme, since a DSN may hold a password.
//
// A MySQL DSN gets interpolateParams=true unless it says
// interpolateParams=false: the driver then sends each statement with its
// arguments quoted in, in one round trip, instead of preparing it on the
// server, executing it and closing it (three). That is safe here because
// the store always talks utf8mb4 (Open enforces the connection charset,
// ParseDSN refuses the character_set_* and collation_* session variables
// that would change it behind the driver's back, and the driver refuses
// interpolation under the multi-byte charsets where quoting is unsafe) and the driver follows the server's
// NO_BACKSLASH_ESCAPES mode. Say interpolateParams=false for a server or
// proxy that needs server-side prepared statements.
func ParseDSN(dsn string) (DSN, error) {
	if path, ok := strings.CutPrefix(dsn, sqliteScheme); ok {
		switch {
		case path == "":
			return DSN{}, errors.New("sqlite:// needs a file path, such as sqlite://portcullis.db")
		case strings.ContainsAny(path, "?#"):
			return DSN{}, errors.New("a SQLite DSN is a file path only, without query parameters (storage sets its own pragmas)")
		}
		return DSN{Driver: DriverSQLite, Path: path}, nil
	}
	if raw, ok := strings.CutPrefix(dsn, mysqlScheme); ok {
		mc, err := gomysql.ParseDSN(raw)
		switch {
		case err != nil:
			// The driver's message can quote parts of the DSN, password
			// included, so it is not repeated.
			return DSN{}, fmt.Errorf("not a valid MySQL DSN (%s)", dsnForms)
		case mc.DBName == "":
			return DSN{}, fmt.Errorf("the MySQL DSN names no database (%s)", dsnForms)
		case !mc.ParseTime && hasDSNParam(raw, "parseTime"):
			return DSN{}, errors.New("parseTime must be true; leave it out and it is set for you")
		}
		mc.ParseTime = true
		if !hasDSNParam(raw, "interpolateParams") {
			mc.InterpolateParams = true
		}
		if mc.InterpolateParams {
			for name := range mc.Params {
				if n := strings.ToLower(name); strings.HasPrefix(n, "character_set") || strings.HasPrefix(n, "collation") {
					// The driver quotes for the charset it negotiated
					// (utf8mb4): under a multi-byte client charset set
					// behind its back (GBK, Big5), a byte such as 0xbf
					// swallows the backslash of an escaped quote.
					return DSN{}, fmt.Errorf("the MySQL DSN sets %s: storage talks utf8mb4 and quotes for it; leave it out (or say interpolateParams=false)", name)
				}
			}
		}
		return DSN{Driver: DriverMySQL, MySQL: mc}, nil
	}
	if dsn == "" {
		return DSN{}, fmt.Errorf("required (%s)", dsnForms)
	}
	// Quote the scheme only when there plainly is one: whatever follows it
	// may hold a password.
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && isSchemeName(scheme) {
		return DSN{}, fmt.Errorf("unsupported scheme %q: %s", scheme, dsnForms)
	}
	return DSN{}, fmt.Errorf("no sqlite:// or mysql:// scheme: %s", dsnForms)
}

// hasDSNParam reports whether the query of a go-sql-driver DSN names the
// parameter.
func hasDSNParam(raw, name string) bool {
	_, params, ok := strings.Cut(raw[strings.LastIndex(raw, "/")+1:], "?")
	if !ok {
		return false
	}
	for kv := range strings.SplitSeq(params, "&") {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// isSchemeName reports whether s is a URL scheme (RFC 3986 section 3.1).
func isSchemeName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case i > 0 && ('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}
