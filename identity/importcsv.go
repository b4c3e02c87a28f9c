package identity

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// errCSVHeader answers a CSV import whose first line does not name the
// columns Import needs.
var errCSVHeader = &apperr.Error{Code: apperr.EInvalid, Message: "the first CSV line must name the columns: " +
	"username and password_hash (or hashed_password), optionally roles and disabled, each once"}

// errCSVOpenQuote stops a CSV import at a record whose quoted field runs
// over the end of its line and then does not close where a field ends
// (a multi-line field that closes properly is fine): the reader
// cannot tell where the next record begins, and would otherwise swallow
// every line up to the next quote (or the end) unreported.
var errCSVOpenQuote = &apperr.Error{Code: apperr.EInvalid, Message: "a quoted CSV field runs past its line and does not " +
	"close properly (a missing or extra quote); the import stopped there"}

// errCSVLineTooLong stops a CSV import at a line longer than
// maxImportLine: the CSV reader would otherwise hold all of it.
var errCSVLineTooLong = apperr.Errorf(apperr.EInvalid, "a CSV line is longer than %d bytes", maxImportLine)

// csvRecords reads a CSV import (RFC 4180, comma-separated, a header
// line): the columns username and password_hash (hashed_password, the
// FastAPI tutorial's name, is the same column), and optionally roles
// (separated by spaces, commas or semicolons) and disabled (true, false,
// 1, 0 or empty, in any case). Other columns are ignored and named in the
// report. The header's names ignore case and surrounding spaces, and a
// UTF-8 byte order mark before it (as spreadsheets write) is skipped; a
// header holding a control character (such as a file with CR-only line
// endings, read as one line) is refused. A quoted field that fails to
// close on its line stops the import there (errCSVOpenQuote).
type csvRecords struct {
	r       *csv.Reader
	col     map[string]int // column name → index
	width   int
	ignored []string
	last    int // the line of the last record read
}

// newCSVRecords reads the header of r.
func newCSVRecords(r io.Reader) (*csvRecords, error) {
	br := bufio.NewReader(r)
	if bom, _ := br.Peek(3); string(bom) == "\uFEFF" {
		// Before the reader sees it: a BOM before a quoted name would be
		// a bare quote.
		_, _ = br.Discard(3)
	}
	c := &csvRecords{r: csv.NewReader(&lineLimit{r: br, max: maxImportLine}), col: map[string]int{}}
	c.r.FieldsPerRecord = -1 // a line with another number of fields fails alone
	header, err := c.r.Read()
	if errors.Is(err, errCSVLineTooLong) {
		return nil, errCSVLineTooLong
	}
	if err != nil {
		return nil, errCSVHeader
	}
	c.width, c.last = len(header), 1
	for i, name := range header {
		if strings.ContainsFunc(name, unicode.IsControl) {
			return nil, errCSVHeader
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "hashed_password" {
			name = "password_hash"
		}
		switch name {
		case "username", "password_hash", "roles", "disabled":
			if _, dup := c.col[name]; dup {
				return nil, errCSVHeader
			}
			c.col[name] = i
		default:
			c.ignored = append(c.ignored, header[i])
		}
	}
	if _, ok := c.col["username"]; !ok {
		return nil, errCSVHeader
	}
	if _, ok := c.col["password_hash"]; !ok {
		return nil, errCSVHeader
	}
	return c, nil
}

func (c *csvRecords) next() (pendingLine, error) {
	rec, err := c.r.Read()
	if errors.Is(err, io.EOF) {
		return pendingLine{}, io.EOF
	}
	if pe, ok := errors.AsType[*csv.ParseError](err); ok && !errors.Is(err, errCSVLineTooLong) {
		if errors.Is(err, csv.ErrQuote) && pe.Line > pe.StartLine {
			return pendingLine{line: pe.StartLine}, errCSVOpenQuote
		}
		// A malformed quote within one line: the reader goes on at the
		// next line.
		c.last = pe.Line
		return pendingLine{line: pe.StartLine, failed: "not a valid CSV line (quotes)"}, nil
	}
	if err != nil {
		return pendingLine{line: c.last + 1}, err
	}
	line, _ := c.r.FieldPos(0)
	c.last = line
	if len(rec) != c.width {
		return pendingLine{line: line, failed: fmt.Sprintf("the line has %d fields, the header %d", len(rec), c.width)}, nil
	}
	field := func(name string) (string, bool) {
		i, ok := c.col[name]
		if !ok {
			return "", false
		}
		return rec[i], true
	}
	var in importLine
	username, _ := field("username")
	hash, _ := field("password_hash")
	in.Username, in.PasswordHash = &username, &hash
	if v, ok := field("roles"); ok {
		in.Roles = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == ';' || r == '\t' })
	}
	if v, ok := field("disabled"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "", "false", "0":
		case "true", "1":
			in.Disabled = true
		default:
			return pendingLine{line: line, name: validName(username), failed: "disabled must be true, false, 1, 0 or empty"}, nil
		}
	}
	p := pendingLine{line: line}
	p.user, p.failed = checkImport(in)
	if p.user != nil {
		p.name = p.user.Username
	} else {
		p.name = validName(username)
	}
	return p, nil
}

// validName returns username when it is a valid one (for the report), or
// "".
func validName(username string) string {
	if ValidateNewUsername(username) == nil {
		return username
	}
	return ""
}

// lineLimit passes r through, failing with errCSVLineTooLong once a line
// (between two newlines) is longer than max bytes.
type lineLimit struct {
	r   io.Reader
	max int
	cur int
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			l.cur = 0
			continue
		}
		if l.cur++; l.cur > l.max {
			return 0, errCSVLineTooLong
		}
	}
	return n, err
}
