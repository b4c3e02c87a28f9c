package storage_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/storage"
)

// TestParseDSNHosts: a MySQL DSN lists one server, or several separated
// by commas, each as go-sql-driver writes one (NET(ADDR)), sharing the
// user, password, database and parameters.
func TestParseDSNHosts(t *testing.T) {
	tests := []struct {
		dsn  string
		want []storage.MySQLHost
	}{
		{"mysql://u:p@tcp(db1:3306)/app", []storage.MySQLHost{{Net: "tcp", Addr: "db1:3306"}}},
		{"mysql://u:p@tcp(db1:3306),tcp(db2:3307),tcp(db3:3306)/app?parseTime=true",
			[]storage.MySQLHost{{Net: "tcp", Addr: "db1:3306"}, {Net: "tcp", Addr: "db2:3307"}, {Net: "tcp", Addr: "db3:3306"}}},
		// The default port is added, as the driver does for one host.
		{"mysql://u:p@tcp(db1),tcp(db2)/app", []storage.MySQLHost{{Net: "tcp", Addr: "db1:3306"}, {Net: "tcp", Addr: "db2:3306"}}},
		{"mysql://u:p@tcp([::1]:3306),tcp(10.0.0.2:3306)/app", []storage.MySQLHost{{Net: "tcp", Addr: "[::1]:3306"}, {Net: "tcp", Addr: "10.0.0.2:3306"}}},
		{"mysql://u:p@unix(/run/mysqld/mysqld.sock),tcp(db2:3306)/app",
			[]storage.MySQLHost{{Net: "unix", Addr: "/run/mysqld/mysqld.sock"}, {Net: "tcp", Addr: "db2:3306"}}},
		// A password may hold '@', ',' and parentheses: the hosts follow
		// the last '@'.
		{"mysql://u:p@ss,(x)@tcp(db1:3306),tcp(db2:3306)/app", []storage.MySQLHost{{Net: "tcp", Addr: "db1:3306"}, {Net: "tcp", Addr: "db2:3306"}}},
		{"mysql://u:p@tcp(db1:3306),tcp(db2:3306)/app?interpolateParams=false&timeout=3s",
			[]storage.MySQLHost{{Net: "tcp", Addr: "db1:3306"}, {Net: "tcp", Addr: "db2:3306"}}},
	}
	for _, tt := range tests {
		d, err := storage.ParseDSN(tt.dsn)
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", storage.RedactDSN(tt.dsn), err)
			continue
		}
		if !slices.Equal(d.Hosts, tt.want) {
			t.Errorf("ParseDSN(%q).Hosts = %v, want %v", storage.RedactDSN(tt.dsn), d.Hosts, tt.want)
		}
		if d.MySQL.Net != tt.want[0].Net || d.MySQL.Addr != tt.want[0].Addr {
			t.Errorf("ParseDSN(%q).MySQL is on %s(%s), want the first host", storage.RedactDSN(tt.dsn), d.MySQL.Net, d.MySQL.Addr)
		}
		if d.MySQL.User != "u" || d.MySQL.DBName != "app" || !d.MySQL.ParseTime {
			t.Errorf("ParseDSN(%q).MySQL = user %q db %q parseTime %v", storage.RedactDSN(tt.dsn), d.MySQL.User, d.MySQL.DBName, d.MySQL.ParseTime)
		}
		if want := !strings.Contains(tt.dsn, "interpolateParams=false"); d.MySQL.InterpolateParams != want {
			t.Errorf("ParseDSN(%q).MySQL.InterpolateParams = %v, want %v", storage.RedactDSN(tt.dsn), d.MySQL.InterpolateParams, want)
		}
	}
}

// TestParseDSNHostsRefused: a malformed host list, a host listed twice,
// too many hosts, and the session variables refused for one host are
// refused for a list, with errors that never repeat the DSN's password.
func TestParseDSNHostsRefused(t *testing.T) {
	var many []string
	for i := range 17 {
		many = append(many, "tcp(db"+string(rune('a'+i))+":3306)")
	}
	tests := []struct{ name, dsn, want string }{
		{"empty element", "mysql://u:s3cret-pw@tcp(node-a:3306),,tcp(node-b:3306)/app", "host list is malformed"},
		{"element without network", "mysql://u:s3cret-pw@tcp(node-a:3306),node-b:3306/app", "host list is malformed"},
		{"empty address", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp()/app", "host list is malformed"},
		{"unclosed", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp(node-b:3306/app", "host list is malformed"},
		{"nested parentheses", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp((node-b):3306)/app", "host list is malformed"},
		{"bad network name", "mysql://u:s3cret-pw@tcp(node-a:3306),t p(node-b:3306)/app", "host list is malformed"},
		{"trailing comma", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp(node-b:3306),/app", "host list is malformed"},
		{"duplicate", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp(node-b:3306),tcp(node-a:3306)/app", "one host twice"},
		{"duplicate by default port", "mysql://u:s3cret-pw@tcp(node-a),tcp(node-a:3306)/app", "one host twice"},
		{"too many", "mysql://u:s3cret-pw@" + strings.Join(many, ",") + "/app", "more than 16 hosts"},
		{"no database", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp(node-b:3306)/", "names no database"},
		{"parseTime off", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp(node-b:3306)/app?parseTime=false", "parseTime must be true"},
		{"charset for every host", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp(node-b:3306)/app?character_set_client=gbk", "sets character_set_client"},
		{"collation for every host", "mysql://u:s3cret-pw@tcp(node-a:3306),tcp(node-b:3306),tcp(node-c:3306)/app?collation_connection=big5_chinese_ci", "sets collation_connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storage.ParseDSN(tt.dsn)
			if err == nil {
				t.Fatalf("ParseDSN accepted %q", storage.RedactDSN(tt.dsn))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "node-a") {
				t.Errorf("error %q repeats the DSN", err)
			}
		})
	}
}

// FuzzParseDSN checks ParseDSN on any input: it never panics; a MySQL DSN
// it accepts has 1 to 16 distinct hosts, the first of which is the
// driver configuration's, parseTime on and, with interpolated arguments,
// no character_set_* or collation_* session variable; each host of a
// list parses on its own to the same configuration; and an error never
// depends on the password (the same DSN with another password of the
// same length fails with the same message). Seeds are in
// testdata/fuzz/FuzzParseDSN.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"mysql://u:p@tcp(db1:3306)/app",
		"mysql://u:p@tcp(db1:3306),tcp(db2:3306),tcp(db3:3306)/app?parseTime=true",
		"mysql://u:p@tcp(db1:3306),tcp(db2:3306)/app?character_set_client=gbk",
		"sqlite://portcullis.db",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		d, err := storage.ParseDSN(dsn)
		if pw, other, ok := swapPassword(dsn); ok {
			_, err2 := storage.ParseDSN(other)
			if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
				t.Fatalf("ParseDSN's answer depends on the password %q: %v / %v", pw, err, err2)
			}
		}
		if err != nil || d.Driver != storage.DriverMySQL {
			return
		}
		if n := len(d.Hosts); n < 1 || n > 16 {
			t.Fatalf("%d hosts", n)
		}
		if d.Hosts[0] != (storage.MySQLHost{Net: d.MySQL.Net, Addr: d.MySQL.Addr}) {
			t.Fatalf("first host %v, driver configuration on %s(%s)", d.Hosts[0], d.MySQL.Net, d.MySQL.Addr)
		}
		for i, h := range d.Hosts {
			if slices.Index(d.Hosts, h) != i {
				t.Fatalf("host %v listed twice", h)
			}
		}
		if !d.MySQL.ParseTime {
			t.Fatal("parseTime off")
		}
		if d.MySQL.InterpolateParams {
			for name := range d.MySQL.Params {
				if n := strings.ToLower(name); strings.HasPrefix(n, "character_set") || strings.HasPrefix(n, "collation") {
					t.Fatalf("accepted session variable %s with interpolateParams", name)
				}
			}
		}
		if len(d.Hosts) == 1 {
			return
		}
		want := d.MySQL.Clone()
		want.Net, want.Addr = "", ""
		elems := hostElements(dsn)
		if len(elems) != len(d.Hosts) {
			t.Fatalf("%d hosts from %d elements", len(d.Hosts), len(elems))
		}
		for i, h := range d.Hosts {
			one, err := storage.ParseDSN(onlyHost(dsn, elems[i]))
			if err != nil {
				t.Fatalf("host %v alone: %v", h, err)
			}
			if len(one.Hosts) != 1 || one.Hosts[0] != h {
				t.Fatalf("host %v alone parses to %v", h, one.Hosts)
			}
			got := one.MySQL.Clone()
			got.Net, got.Addr = "", ""
			if got.FormatDSN() != want.FormatDSN() {
				t.Fatalf("host %v alone: configuration %q, want %q", h, got.FormatDSN(), want.FormatDSN())
			}
		}
	})
}

// swapPassword returns the password of a mysql:// DSN (split as the
// driver splits it) and the DSN with another password of the same length,
// when the password holds none of the characters that delimit a DSN's
// parts.
func swapPassword(dsn string) (pw, other string, ok bool) {
	raw, isMySQL := strings.CutPrefix(dsn, "mysql://")
	slash := strings.LastIndex(raw, "/")
	if !isMySQL || slash < 0 {
		return "", "", false
	}
	at := strings.LastIndex(raw[:slash], "@")
	if at < 0 {
		return "", "", false
	}
	user, pw, hasPw := strings.Cut(raw[:at], ":")
	if !hasPw || pw == "" || strings.ContainsAny(pw, "@/:(),?&=%") {
		return "", "", false
	}
	repl := strings.Repeat("x", len(pw))
	if repl == pw {
		repl = strings.Repeat("y", len(pw))
	}
	return pw, "mysql://" + user + ":" + repl + raw[at:], true
}

// hostElements returns the NET(ADDR) elements of the host list of dsn, a
// mysql:// DSN listing several hosts.
func hostElements(dsn string) []string {
	raw := strings.TrimPrefix(dsn, "mysql://")
	slash := strings.LastIndex(raw, "/")
	at := strings.LastIndex(raw[:slash], "@")
	elems := strings.Split(raw[at+1:slash], "),")
	for i := range elems[:len(elems)-1] {
		elems[i] += ")"
	}
	return elems
}

// onlyHost returns dsn, a mysql:// DSN listing several hosts, with the
// host list replaced by elem.
func onlyHost(dsn, elem string) string {
	raw := strings.TrimPrefix(dsn, "mysql://")
	slash := strings.LastIndex(raw, "/")
	at := strings.LastIndex(raw[:slash], "@")
	return "mysql://" + raw[:at+1] + elem + raw[slash:]
}
