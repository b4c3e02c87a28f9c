package storage

import (
	"errors"
	"fmt"
	"slices"
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
	// may change their copy. For a DSN listing several hosts, its Net and
	// Addr are the first host's.
	MySQL *gomysql.Config
	// Hosts are the servers of a MySQL DSN in the DSN's order: one, or
	// several for fail-over (see ParseDSN).
	Hosts []MySQLHost
}

// MySQLHost is one server of a MySQL DSN.
type MySQLHost struct {
	// Net is the go-sql-driver network, such as "tcp" or "unix".
	Net string
	// Addr is HOST:PORT (port 3306 when the DSN gives none) or a socket
	// path.
	Addr string
}

// maxMySQLHosts bounds the hosts of one DSN.
const maxMySQLHosts = 16

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
//
// A MySQL DSN may list several servers, such as the nodes of a MariaDB
// Galera cluster, separated by commas where go-sql-driver/mysql takes one:
//
//	mysql://USER:PASS@tcp(H1:3306),tcp(H2:3306),tcp(H3:3306)/DB?PARAMS
//
// Every server shares the user, password, database and parameters. Each
// new connection goes to the first server, in this order, that accepts it
// within the timeout parameter (per server, default 1s with several
// servers) and can serve: any MySQL or MariaDB server, or a Galera node
// only when it is synced (wsrep_ready ON, wsrep_local_state 4). A server
// that failed is tried after the others for 30s, and the connections
// made to it before it failed are not used again (see Open). At most 16
// servers; each appears once.
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
		dsns, err := splitMySQLHosts(raw)
		if err != nil {
			return DSN{}, err
		}
		mc, err := gomysql.ParseDSN(dsns[0])
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
		hosts := []MySQLHost{{Net: mc.Net, Addr: mc.Addr}}
		for _, one := range dsns[1:] {
			hc, err := gomysql.ParseDSN(one)
			if err != nil {
				return DSN{}, fmt.Errorf("not a valid MySQL DSN (%s)", dsnForms)
			}
			h := MySQLHost{Net: hc.Net, Addr: hc.Addr}
			if slices.Contains(hosts, h) {
				return DSN{}, errors.New("the MySQL DSN lists one host twice")
			}
			hosts = append(hosts, h)
		}
		return DSN{Driver: DriverMySQL, MySQL: mc, Hosts: hosts}, nil
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

// splitMySQLHosts returns the go-sql-driver DSN raw stands for, one per
// host it lists: raw itself unless its address part (between the last
// '@' before the last '/' and that '/', as the driver splits it) is a
// comma-separated list of NET(ADDR) with more than one element.
func splitMySQLHosts(raw string) ([]string, error) {
	slash := strings.LastIndex(raw, "/")
	if slash < 0 {
		return []string{raw}, nil // the driver says what is wrong
	}
	at := strings.LastIndex(raw[:slash], "@")
	prefix, addrs, suffix := raw[:at+1], raw[at+1:slash], raw[slash:]
	if !strings.Contains(addrs, "),") {
		return []string{raw}, nil
	}
	const form = "the MySQL DSN's host list is malformed: want NET(ADDR) per host, separated by commas, such as tcp(db1:3306),tcp(db2:3306)"
	elems := strings.Split(addrs, "),")
	if len(elems) > maxMySQLHosts {
		return nil, fmt.Errorf("the MySQL DSN lists more than %d hosts", maxMySQLHosts)
	}
	out := make([]string, 0, len(elems))
	for i, e := range elems {
		if i < len(elems)-1 {
			e += ")"
		}
		open := strings.IndexByte(e, '(')
		if open <= 0 || !strings.HasSuffix(e, ")") || open+2 >= len(e) ||
			strings.ContainsAny(e[open+1:len(e)-1], "()") || !isNetName(e[:open]) {
			return nil, errors.New(form)
		}
		out = append(out, prefix+e+suffix)
	}
	return out, nil
}

// isNetName reports whether s can name a go-sql-driver network ("tcp",
// "unix", or a name registered with RegisterDialContext).
func isNetName(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return s != ""
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
