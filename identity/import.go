package identity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// DefaultImportBatchSize is the number of lines Import commits in one
// transaction when ImportOptions.BatchSize is zero. Every transaction must
// finish within the store's query timeout (2 s by default): 200 lines, at
// most about a thousand statements, leave a wide margin on a networked
// MySQL.
const DefaultImportBatchSize = 200

// maxImportLine bounds the length of one line of an import, in bytes;
// longer lines fail without being parsed.
const maxImportLine = 64 << 10

// ImportOptions tune Import.
type ImportOptions struct {
	// Update replaces the password hash, roles and disabled state of a
	// user that exists already (by username, ignoring case) with the
	// line's; otherwise such a line is skipped. A replaced hash ends the
	// user's grants and clears their guessing counters, as a password
	// change does; so does disabling.
	Update bool
	// BatchSize is the number of lines committed per transaction. Zero
	// means DefaultImportBatchSize.
	BatchSize int
	// Format is the input's format: ImportJSONLines (the default) or
	// ImportCSV.
	Format ImportFormat
}

// ImportFormat names an input format of Import.
type ImportFormat string

// The formats Import reads.
const (
	// ImportJSONLines: one JSON object per line (the default).
	ImportJSONLines ImportFormat = "jsonl"
	// ImportCSV: RFC 4180 CSV with a header line naming the columns.
	ImportCSV ImportFormat = "csv"
)

// ImportOutcome is what Import did with one line.
type ImportOutcome string

// The outcomes of an import line.
const (
	// ImportImported: a new user was created.
	ImportImported ImportOutcome = "imported"
	// ImportUpdated: an existing user's hash, roles or disabled state
	// were replaced (ImportOptions.Update).
	ImportUpdated ImportOutcome = "updated"
	// ImportSkipped: the user exists already and was left alone.
	ImportSkipped ImportOutcome = "skipped"
	// ImportFailed: the line is invalid; nothing was written for it.
	ImportFailed ImportOutcome = "failed"
)

// ImportLineResult reports one line of an import.
type ImportLineResult struct {
	// Line is the line's number in the input, from 1.
	Line int `json:"line"`
	// Username is the line's username, when it is a valid one.
	Username string `json:"username,omitempty"`
	// Outcome is what was done.
	Outcome ImportOutcome `json:"outcome"`
	// Reason says why a line was skipped or failed, in fixed words that
	// never repeat the password hash.
	Reason string `json:"reason,omitempty"`
}

// ImportReport is the result of Import: the counts of each outcome and
// one result per non-blank line, in input order. Only lines of committed
// transactions are reported.
type ImportReport struct {
	Imported int                `json:"imported"`
	Updated  int                `json:"updated"`
	Skipped  int                `json:"skipped"`
	Failed   int                `json:"failed"`
	Lines    []ImportLineResult `json:"lines"`
	// StoppedAtLine, when not zero, is the first line of the batch a
	// storage or input error aborted: nothing from that line on was
	// written; every line before it is reported and committed.
	StoppedAtLine int `json:"stopped_at_line,omitempty"`
	// IgnoredColumns are the columns of a CSV header that Import does not
	// read (such as the FastAPI tutorial's email and full_name), in
	// header order.
	IgnoredColumns []string `json:"ignored_columns,omitempty"`
}

func (r *ImportReport) add(res ImportLineResult) {
	switch res.Outcome {
	case ImportImported:
		r.Imported++
	case ImportUpdated:
		r.Updated++
	case ImportSkipped:
		r.Skipped++
	case ImportFailed:
		r.Failed++
	}
	r.Lines = append(r.Lines, res)
}

// importLine is one line of the import format.
type importLine struct {
	Username     *string  `json:"username"`
	PasswordHash *string  `json:"password_hash"`
	Roles        []string `json:"roles"`
	Disabled     bool     `json:"disabled"`
}

// importMembers are the members of importLine, for the duplicate check.
var importMembers = []string{"username", "password_hash", "roles", "disabled"}

// pendingLine is a line read and checked, waiting for its batch.
type pendingLine struct {
	line   int
	user   *User  // nil if the line failed
	failed string // its reason
	name   string // valid username, for the report
}

// Import creates users from r, in JSON Lines: one JSON object per line,
//
//	{"username": "alice", "password_hash": "$2b$12$…", "roles": ["admin"], "disabled": false}
//
// with the members username and password_hash required, roles (default
// none) and disabled (default false) optional, and no others. The hash is
// kept as it is: a bcrypt hash ($2a$, $2b$, $2y$, cost MinBcryptCost to
// MaxBcryptCost; ParseBcrypt) or an argon2id PHC string within the bounds
// of Argon2Params.Validate (ParsePHC); a bcrypt hash is replaced by an
// argon2id one at the user's first successful login (Authenticate).
// Usernames follow ValidateNewUsername, roles ValidateRoles. Blank lines
// are ignored.
//
// Each line is checked on its own: an invalid line, or one naming a user
// an earlier line named, is reported as failed and the others go on. A
// user that exists is skipped, or updated with opts.Update, and never
// duplicated, so an import can be run again. Lines are committed in
// batches of opts.BatchSize, each in one transaction (Store.InTx): a
// storage error, or an error reading r, aborts its batch and stops the
// import. Import then returns the report of the batches committed before
// it, with StoppedAtLine set, and the error; re-running the same input
// skips what was committed.
func (s *Service) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*ImportReport, error) {
	size := opts.BatchSize
	if size <= 0 {
		size = DefaultImportBatchSize
	}
	report := &ImportReport{Lines: []ImportLineResult{}}
	seen := map[string]int{} // normalized username → first line
	var src importSource
	switch opts.Format {
	case "", ImportJSONLines:
		src = &jsonLines{lines: &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: maxImportLine}}
	case ImportCSV:
		c, err := newCSVRecords(r)
		if err != nil {
			report.StoppedAtLine = 1
			return report, err
		}
		report.IgnoredColumns = c.ignored
		src = c
	default:
		return report, apperr.Errorf(apperr.EInvalid, "the import format is jsonl or csv")
	}
	var batch []pendingLine
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := s.importBatch(ctx, batch, opts.Update)
		if err != nil {
			report.StoppedAtLine = batch[0].line
			return fmt.Errorf("import stopped at line %d, nothing from it on was written: %w", batch[0].line, err)
		}
		for _, res := range results {
			report.add(res)
		}
		batch = batch[:0]
		return nil
	}
	for {
		p, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			report.StoppedAtLine = p.line
			if len(batch) > 0 {
				report.StoppedAtLine = batch[0].line
			}
			return report, fmt.Errorf("import stopped at line %d, nothing from it on was written: read input: %w", report.StoppedAtLine, err)
		}
		n := p.line
		if p.user != nil {
			norm := NormalizeUsername(p.name)
			if first, dup := seen[norm]; dup {
				p.user, p.failed = nil, fmt.Sprintf("the username is on line %d already", first)
			} else {
				seen[norm] = n
			}
		}
		batch = append(batch, p)
		if len(batch) >= size {
			if err := flush(); err != nil {
				return report, err
			}
		}
	}
	if err := flush(); err != nil {
		return report, err
	}
	s.logger().InfoContext(ctx, "users imported", "imported", report.Imported, "updated", report.Updated,
		"skipped", report.Skipped, "failed", report.Failed)
	return report, nil
}

// importBatch writes the users of batch in one transaction and returns
// one result per line, or the error that rolled it all back.
func (s *Service) importBatch(ctx context.Context, batch []pendingLine, update bool) ([]ImportLineResult, error) {
	var results []ImportLineResult
	err := s.Store.InTx(ctx, func(ctx context.Context) error {
		// InTx may run this again after a conflict: start afresh.
		results = make([]ImportLineResult, 0, len(batch))
		for _, p := range batch {
			if p.user == nil {
				results = append(results, ImportLineResult{Line: p.line, Username: p.name, Outcome: ImportFailed, Reason: p.failed})
				continue
			}
			outcome, reason, err := s.importUser(ctx, p.user, update)
			if err != nil {
				return err
			}
			results = append(results, ImportLineResult{Line: p.line, Username: p.name, Outcome: outcome, Reason: reason})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// importUser creates in, or updates the user of the same name, in the
// transaction ctx carries, with its audit event.
func (s *Service) importUser(ctx context.Context, in *User, update bool) (ImportOutcome, string, error) {
	now := s.now().UTC()
	u, err := s.Store.GetUserByUsername(ctx, in.Username)
	switch {
	case errors.Is(err, apperr.ErrNotFound):
		nu := *in
		nu.ID = uuid.NewString()
		if s.NewID != nil {
			nu.ID = s.NewID()
		}
		nu.CreatedAt, nu.UpdatedAt = now, now
		if err := s.Store.CreateUser(ctx, &nu); err != nil {
			return "", "", fmt.Errorf("create user: %w", err)
		}
		if err := s.record(ctx, audit.UserImport, audit.UserTarget(nu.ID)); err != nil {
			return "", "", err
		}
		return ImportImported, "", nil
	case err != nil:
		return "", "", fmt.Errorf("look up user: %w", err)
	case !update:
		return ImportSkipped, "the user exists", nil
	case u.PasswordHash == in.PasswordHash && slices.Equal(u.Roles, in.Roles) && u.Disabled == in.Disabled:
		return ImportSkipped, "the user exists with this hash, roles and disabled state", nil
	}
	newHash := u.PasswordHash != in.PasswordHash
	disabling := in.Disabled && !u.Disabled
	if _, err := s.Store.UpdateUser(ctx, u.ID, func(u *User) error {
		u.PasswordHash, u.Roles, u.Disabled, u.UpdatedAt = in.PasswordHash, in.Roles, in.Disabled, now
		return nil
	}); err != nil {
		return "", "", fmt.Errorf("update user: %w", err)
	}
	if newHash || disabling {
		if err := s.revokeSessions(ctx, u.ID); err != nil {
			return "", "", err
		}
	}
	if newHash {
		if err := s.clearThrottles(ctx, u.Username); err != nil {
			return "", "", err
		}
	}
	if err := s.record(ctx, audit.UserImport, audit.UserTarget(u.ID)); err != nil {
		return "", "", err
	}
	return ImportUpdated, "", nil
}

// parseImportLine decodes and checks one line. It returns the user to
// import (without ID and times) or the reason the line fails, in fixed
// words that never repeat the password hash, and the line's username if
// it is a valid one.
func parseImportLine(line []byte) (u *User, failed, username string) {
	u, failed = checkImportLine(line)
	if u != nil {
		return u, "", u.Username
	}
	var in struct {
		Username string `json:"username"`
	}
	if json.Unmarshal(line, &in) == nil && ValidateNewUsername(in.Username) == nil && checkImportMembers(line) == "" {
		username = in.Username
	}
	return nil, failed, username
}

// checkImportLine is parseImportLine without the username of a failed
// line.
func checkImportLine(line []byte) (*User, string) {
	if reason := checkImportMembers(line); reason != "" {
		return nil, reason
	}
	var in importLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && slices.Contains(importMembers, e.Field) {
			return nil, fmt.Sprintf("member %q has the wrong type", e.Field)
		}
		return nil, "not a JSON object of the import format"
	}
	return checkImport(in)
}

// checkImport checks one user of an import, whatever its format.
func checkImport(in importLine) (*User, string) {
	if in.Username == nil {
		return nil, "username is missing"
	}
	if err := ValidateNewUsername(*in.Username); err != nil {
		return nil, err.Error()
	}
	if in.PasswordHash == nil || *in.PasswordHash == "" {
		return nil, "password_hash is missing"
	}
	if err := ValidateHash(*in.PasswordHash); err != nil {
		return nil, hashProblem(*in.PasswordHash)
	}
	roles, err := ValidateRoles(in.Roles)
	if err != nil {
		return nil, "invalid roles: a role is 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
	}
	return &User{Username: *in.Username, PasswordHash: *in.PasswordHash, Roles: roles, Disabled: in.Disabled}, ""
}

// hashProblem says in fixed words why ValidateHash refused h.
func hashProblem(h string) string {
	if isBcrypt(h) {
		if _, err := ParseBcrypt(h); err != nil {
			// ParseBcrypt's detail names at most the cost.
			return "invalid password_hash: " + strings.TrimPrefix(err.Error(), ErrMalformedHash.Error()+": ")
		}
	}
	if len(h) >= len("$argon2") && h[:len("$argon2")] == "$argon2" {
		return "invalid password_hash: not an argon2id v=19 PHC string with parameters within the accepted bounds"
	}
	return "invalid password_hash: neither a bcrypt ($2a$, $2b$, $2y$) nor an argon2id PHC hash"
}

// checkImportMembers refuses a line that is not one JSON object, or whose
// object repeats a member (encoding/json would keep the last).
func checkImportMembers(line []byte) string {
	dec := json.NewDecoder(bytes.NewReader(line))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "not a JSON object"
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "not a JSON object"
		}
		name, _ := t.(string)
		if !slices.Contains(importMembers, name) {
			return "unknown member: the members are username, password_hash, roles and disabled"
		}
		if seen[name] {
			return fmt.Sprintf("member %q appears twice", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "not a JSON object"
		}
	}
	if _, err := dec.Token(); err != nil {
		return "not a JSON object"
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "more than one JSON value on the line"
	}
	return ""
}

// importSource is an input of Import: next returns the next user or
// failed line, with its line number; io.EOF after the last; another
// error stops the import (pendingLine.line then says where).
type importSource interface {
	next() (pendingLine, error)
}

// jsonLines reads JSON Lines, skipping blank lines.
type jsonLines struct {
	lines *lineReader
	n     int
}

func (j *jsonLines) next() (pendingLine, error) {
	for {
		line, tooLong, err := j.lines.next()
		if errors.Is(err, io.EOF) {
			return pendingLine{}, io.EOF
		}
		j.n++
		if err != nil {
			return pendingLine{line: j.n}, err
		}
		if !tooLong && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		p := pendingLine{line: j.n}
		if tooLong {
			p.failed = fmt.Sprintf("line is longer than %d bytes", maxImportLine)
		} else {
			p.user, p.failed, p.name = parseImportLine(line)
		}
		return p, nil
	}
}

// lineReader splits its input into lines, refusing to hold more than max
// bytes of one.
type lineReader struct {
	r   *bufio.Reader
	max int
}

// next returns the next line without its line ending, and whether it was
// longer than max (its bytes are then discarded); io.EOF after the last
// line.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	var buf []byte
	read := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !tooLong {
			if len(buf)+len(chunk) > l.max+2 { // +2: the line ending
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && !read:
			return nil, false, io.EOF
		case err != nil && !errors.Is(err, io.EOF):
			return nil, false, err
		}
		return bytes.TrimRight(buf, "\r\n"), tooLong, nil
	}
}
