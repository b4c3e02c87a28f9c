package storage

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/ory/fosite"
	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

func TestErrorTranslation(t *testing.T) {
	s := &Store{}
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name       string
		err        error
		want       error // for wrapf
		wantFosite error // for wrapFosite
	}{
		{"record not found", gorm.ErrRecordNotFound, ErrNotFound, fosite.ErrNotFound},
		{"mysql duplicate", &gomysql.MySQLError{Number: 1062}, ErrAlreadyExists, ErrAlreadyExists},
		{"mysql deadlock", &gomysql.MySQLError{Number: 1213}, apperr.ErrUnavailable, fosite.ErrSerializationFailure},
		{"mysql lock wait or galera causal read failed", &gomysql.MySQLError{Number: 1205}, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"galera node not ready", &gomysql.MySQLError{Number: 1047}, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"mysql shutdown", &gomysql.MySQLError{Number: 1053}, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"galera node not in the primary component", &gomysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"mysql syntax", &gomysql.MySQLError{Number: 1064}, nil, nil},
		{"bad conn", driver.ErrBadConn, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"no synced galera node", fmt.Errorf("no usable host: %w", errors.Join(errNodeNotReady, errNodeNotReady)), apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"invalid conn", fmt.Errorf("x: %w", gomysql.ErrInvalidConn), apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"net.OpError", opErr, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"connection reset", syscall.ECONNRESET, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"EOF", io.EOF, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"unexpected EOF", io.ErrUnexpectedEOF, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"pool deadline", context.DeadlineExceeded, apperr.ErrUnavailable, apperr.ErrUnavailable},
		{"other", errors.New("boom"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(kind string, got, want error) {
				t.Helper()
				if !errors.Is(got, tt.err) && !errors.Is(want, fosite.ErrNotFound) && !errors.Is(want, ErrNotFound) {
					t.Errorf("%s(%v) = %v: lost the cause", kind, tt.err, got)
				}
				for _, sentinel := range []error{ErrNotFound, ErrAlreadyExists, apperr.ErrUnavailable, fosite.ErrNotFound, fosite.ErrSerializationFailure} {
					if is, wantIs := errors.Is(got, sentinel), sentinel == want; is != wantIs {
						t.Errorf("%s(%v) = %v: errors.Is(%v) = %v, want %v", kind, tt.err, got, sentinel, is, wantIs)
					}
				}
			}
			check("wrapf", s.wrapf(tt.err, "op"), tt.want)
			check("wrapFosite", s.wrapFosite(tt.err, "op"), tt.wantFosite)
		})
	}
	if s.wrapf(nil, "op") != nil || s.wrapFosite(nil, "op") != nil {
		t.Fatal("nil error was wrapped")
	}
}

// TestRedactDSN holds the cases of the two redactors it replaced, in
// storage (first four; "***" became [REDACTED]) and in configs.
func TestRedactDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:secret@h/db", "postgres://u:REDACTED@h/db"},
		{"u:secret@tcp(h:3306)/db", "[REDACTED]"},
		{"sqlite://x.db", "sqlite://x.db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"sqlite://portcullis.db", "sqlite://portcullis.db"},
		{"mysql://u:pw@tcp(db:3306)/p", "mysql://u:[REDACTED]@tcp(db:3306)/p"},
		{"mysql://u:p@w/d@tcp(db:3306)/p", "mysql://u:[REDACTED]@tcp(db:3306)/p"},
		{"mysql://u@tcp(db:3306)/p", "mysql://u@tcp(db:3306)/p"},
		{"mysql://u:pw@tcp(db:3306)", "mysql://u:[REDACTED]@tcp(db:3306)"},
		{"postgres://u:pw@db/p", "postgres://u:REDACTED@db/p"},
		{"u:pw@tcp(db)/p", "[REDACTED]"},
		{"mysql://u:pw@tcp(db1:3306),tcp(db2:3306),tcp(db3:3306)/p?parseTime=true", "mysql://u:[REDACTED]@tcp(db1:3306),tcp(db2:3306),tcp(db3:3306)/p?parseTime=true"},
		{"mysql://u:p@w,(x)@tcp(db1:3306),tcp(db2:3306)/p", "mysql://u:[REDACTED]@tcp(db1:3306),tcp(db2:3306)/p"},
	}
	for _, tt := range tests {
		if got := RedactDSN(tt.in); got != tt.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMySQLLoggerNoSourcePositions: the driver's own messages reach the log
// without its "packets.go:58 " source position (red-team finding: logs
// must carry no file:line frames).
func TestMySQLLoggerNoSourcePositions(t *testing.T) {
	var buf bytes.Buffer
	l := mysqlLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Print("packets.go:58 ", errors.New("read tcp 127.0.0.1:1->127.0.0.1:3306: i/o timeout"))
	l.Print("closing bad idle connection: ", errors.New("EOF"))
	out := buf.String()
	if regexp.MustCompile(`\.go:\d+`).MatchString(out) || !strings.Contains(out, "i/o timeout") || !strings.Contains(out, "closing bad idle connection") {
		t.Fatalf("log = %q", out)
	}
}
