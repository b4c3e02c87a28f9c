package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// ErrMalformedHash is returned, wrapped with detail, by ParsePHC and
// PasswordHasher.Verify when a stored hash is not a well-formed argon2id PHC
// string within the bounds documented on Argon2Params.Validate. Test for it
// with errors.Is.
var ErrMalformedHash = errors.New("identity: malformed password hash")

// Bounds on argon2id parameters, enforced on every hash we create or parse so
// that a hostile or corrupted row in the user table cannot make Verify
// allocate gigabytes or run for minutes.
const (
	// minArgon2MemoryPerLane is the argon2 minimum of 8 KiB per lane
	// (RFC 9106 section 3.1); the reference implementation rejects less.
	minArgon2MemoryPerLane = 8
	// maxArgon2MemoryKiB is 1 GiB, well above OWASP's 19–46 MiB and
	// RFC 9106's 64 MiB option, well below the machine's memory.
	maxArgon2MemoryKiB = 1 << 20
	// maxArgon2Iterations bounds the number of passes over memory.
	maxArgon2Iterations = 100
	// maxArgon2Work bounds memory × iterations (KiB-passes) to 4 GiB worth,
	// so the individual maxima cannot be combined.
	maxArgon2Work = 4 << 20
	minArgon2Salt = 8
	maxArgon2Salt = 64
	minArgon2Key  = 16
	maxArgon2Key  = 128
	// maxPHCLength is longer than any string within the bounds above
	// (about 320 bytes) and is checked before any other parsing.
	maxPHCLength = 512
	// phcPrefix is the only algorithm and version accepted.
	phcPrefix = "$argon2id$v=19$"
)

// b64 is the PHC string encoding: standard alphabet, no padding
// (as written by the argon2 reference implementation and libsodium).
var b64 = base64.RawStdEncoding.Strict()

// Argon2Params are the argon2id cost parameters and output sizes.
// The zero value is not valid; start from DefaultArgon2Params.
type Argon2Params struct {
	// MemoryKiB is the memory cost m in KiB.
	MemoryKiB uint32
	// Iterations is the time cost t (passes over memory).
	Iterations uint32
	// Parallelism is the number of lanes p.
	Parallelism uint8
	// SaltLength is the length in bytes of the random salt.
	SaltLength uint32
	// KeyLength is the length in bytes of the derived hash.
	KeyLength uint32
}

// DefaultArgon2Params returns the OWASP Password Storage Cheat Sheet
// minimum for argon2id: m=19456 KiB (19 MiB), t=2, p=1, with a 16-byte salt
// and a 32-byte hash.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{
		MemoryKiB:   19456,
		Iterations:  2,
		Parallelism: 1,
		SaltLength:  16,
		KeyLength:   32,
	}
}

// Validate reports whether p is within the bounds this package accepts,
// both for new hashes and for hashes read back by ParsePHC:
//
//   - Parallelism p from 1 to 255;
//   - MemoryKiB from 8×p to 1048576 (1 GiB);
//   - Iterations from 1 to 100;
//   - MemoryKiB × Iterations at most 4194304 (4 GiB of memory passes);
//   - SaltLength from 8 to 64 bytes;
//   - KeyLength from 16 to 128 bytes.
//
// It returns the first of p.Problems (an *Argon2ParamError), or nil.
func (p Argon2Params) Validate() error {
	if problems := p.Problems(); len(problems) > 0 {
		return problems[0]
	}
	return nil
}

// Argon2ParamError is a parameter outside the bounds of
// Argon2Params.Validate.
type Argon2ParamError struct {
	// Param names the Argon2Params field out of range: "Parallelism",
	// "MemoryKiB", "Iterations", "SaltLength" or "KeyLength"; it is ""
	// for the bound on MemoryKiB × Iterations.
	Param string
	msg   string
}

// Error describes the parameter and its range, e.g.
// "argon2 memory 2097152 KiB out of range [8, 1048576]".
func (e *Argon2ParamError) Error() string { return e.msg }

// Problems returns one error per bound of Validate that p breaks, in the
// order Validate lists them, so that a configuration can report each
// parameter at once; nil when p is valid.
func (p Argon2Params) Problems() []*Argon2ParamError {
	var out []*Argon2ParamError
	add := func(param, format string, args ...any) {
		out = append(out, &Argon2ParamError{Param: param, msg: fmt.Sprintf(format, args...)})
	}
	if p.Parallelism < 1 {
		add("Parallelism", "argon2 parallelism %d out of range [1, 255]", p.Parallelism)
	}
	minMemory := minArgon2MemoryPerLane * uint32(max(p.Parallelism, 1))
	memoryOK := p.MemoryKiB >= minMemory && p.MemoryKiB <= maxArgon2MemoryKiB
	if !memoryOK {
		add("MemoryKiB", "argon2 memory %d KiB out of range [%d, %d]", p.MemoryKiB, minMemory, maxArgon2MemoryKiB)
	}
	iterationsOK := p.Iterations >= 1 && p.Iterations <= maxArgon2Iterations
	if !iterationsOK {
		add("Iterations", "argon2 iterations %d out of range [1, %d]", p.Iterations, maxArgon2Iterations)
	}
	if work := uint64(p.MemoryKiB) * uint64(p.Iterations); memoryOK && iterationsOK && work > maxArgon2Work {
		add("", "argon2 memory × iterations %d exceeds %d", work, maxArgon2Work)
	}
	if p.SaltLength < minArgon2Salt || p.SaltLength > maxArgon2Salt {
		add("SaltLength", "argon2 salt length %d out of range [%d, %d]", p.SaltLength, minArgon2Salt, maxArgon2Salt)
	}
	if p.KeyLength < minArgon2Key || p.KeyLength > maxArgon2Key {
		add("KeyLength", "argon2 key length %d out of range [%d, %d]", p.KeyLength, minArgon2Key, maxArgon2Key)
	}
	return out
}

// PasswordHasher hashes and verifies passwords with argon2id, storing them
// as PHC strings. It is safe for concurrent use. Do not change its fields or
// copy it after first use; create it with NewPasswordHasher.
type PasswordHasher struct {
	// Params are used for new hashes; Verify reports needsRehash for stored
	// hashes made with other parameters. They must satisfy
	// Argon2Params.Validate.
	Params Argon2Params
	// Rand is the source of salts. Nil means crypto/rand.Reader.
	Rand io.Reader

	burnOnce sync.Once
	burnHash string // PHC string with h.Params for Burn; "" if Params are invalid
}

// NewPasswordHasher returns a hasher using p for new hashes and
// crypto/rand for salts. Check p with Argon2Params.Validate at start-up:
// Hash fails with invalid parameters.
func NewPasswordHasher(p Argon2Params) *PasswordHasher {
	return &PasswordHasher{Params: p}
}

// Hash returns the PHC string of password with a fresh random salt, for
// example $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>. It fails if
// h.Params are invalid or the random source fails.
func (h *PasswordHasher) Hash(password string) (string, error) {
	p := h.Params
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("identity: hash password: %w", err)
	}
	r := h.Rand
	if r == nil {
		r = rand.Reader
	}
	salt := make([]byte, p.SaltLength)
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("identity: hash password: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLength)
	return encodePHC(p, salt, key), nil
}

// Verify reports whether password matches the stored hash encoded, an
// argon2id PHC string or a bcrypt hash (as imported from another system:
// ParseBcrypt), comparing in constant time. needsRehash is true when ok is
// true and the hash is bcrypt, or argon2id with parameters (including salt
// and key lengths) other than h.Params; the caller should then store a
// fresh Hash of password. A malformed or out of bounds hash (a bcrypt cost
// outside MinBcryptCost..MaxBcryptCost included) or one of another
// algorithm returns ErrMalformedHash, wrapped with detail, and does no
// hashing work.
//
// A bcrypt check costs what its cost parameter says, not what h.Params
// do: Burn matches argon2id hashes made with h.Params only.
func (h *PasswordHasher) Verify(password, encoded string) (ok, needsRehash bool, err error) {
	if isBcrypt(encoded) {
		ok, err := verifyBcrypt(password, encoded)
		return ok, ok, err
	}
	p, salt, key, err := ParsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLength)
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	return true, p != h.Params, nil
}

// Burn spends the same work as a Verify of password against a hash made
// with h.Params and discards the result. Call it when a login names an
// unknown user, so that it costs as much as a wrong password and response
// times do not reveal which usernames exist. The dummy hash is built once
// per hasher, on first use. Burn does nothing if h.Params are invalid.
//
// Burn costs what an argon2id check with h.Params costs, the hash of
// every account created or rehashed here. A user imported with a bcrypt
// hash costs what that hash's cost says (cost 12: several times an
// argon2id check with the default parameters) until their first
// successful login rehashes it: until then, the time of a wrong password
// tells such a user apart from an unknown username. Unknown users stay
// indistinguishable from argon2id users, the default, which is the case
// worth protecting; an operator who minds can have imported users log in
// once, or import argon2id hashes.
func (h *PasswordHasher) Burn(password string) {
	h.burnOnce.Do(func() {
		p := h.Params
		if p.Validate() != nil {
			return
		}
		// Salt and key values do not affect the cost; zeros will do and
		// never match, since the work is all in deriving a key.
		h.burnHash = encodePHC(p, make([]byte, p.SaltLength), make([]byte, p.KeyLength))
	})
	if h.burnHash == "" {
		return
	}
	_, _, _ = h.Verify(password, h.burnHash)
}

// ParsePHC decodes an argon2id PHC string of the form
//
//	$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash>
//
// where salt and hash are unpadded standard base64 and m, t, p are decimal
// without sign or leading zeros, in that order and with no other
// parameters. The returned params have SaltLength and KeyLength set from the
// decoded salt and key. Parsing is strict, so any string it accepts is the
// exact encoding of what it returns; anything else, including parameters
// outside the bounds of Argon2Params.Validate, returns ErrMalformedHash
// wrapped with detail.
func ParsePHC(encoded string) (params Argon2Params, salt, key []byte, err error) {
	fail := func(format string, args ...any) (Argon2Params, []byte, []byte, error) {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
	}
	if len(encoded) > maxPHCLength {
		return fail("longer than %d bytes", maxPHCLength)
	}
	rest, found := strings.CutPrefix(encoded, phcPrefix)
	if !found {
		return fail("not an argon2id v=19 PHC string")
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return fail("want 3 fields after version, got %d", len(fields))
	}
	m, t, p, err := parseArgon2Costs(fields[0])
	if err != nil {
		return fail("%v", err)
	}
	salt, err = decodePHCBase64(fields[1])
	if err != nil {
		return fail("salt: %v", err)
	}
	key, err = decodePHCBase64(fields[2])
	if err != nil {
		return fail("hash: %v", err)
	}
	params = Argon2Params{
		MemoryKiB:   m,
		Iterations:  t,
		Parallelism: uint8(p),
		SaltLength:  uint32(len(salt)),
		KeyLength:   uint32(len(key)),
	}
	if err := params.Validate(); err != nil {
		return fail("%v", err)
	}
	return params, salt, key, nil
}

// parseArgon2Costs parses "m=<m>,t=<t>,p=<p>". It checks syntax and fit in
// the field types; Argon2Params.Validate checks the ranges.
func parseArgon2Costs(s string) (m, t, p uint32, err error) {
	names := [3]string{"m", "t", "p"}
	var vals [3]uint32
	parts := strings.Split(s, ",")
	if len(parts) != len(names) {
		return 0, 0, 0, fmt.Errorf("want parameters m,t,p, got %d parameters", len(parts))
	}
	for i, part := range parts {
		name, val, ok := strings.Cut(part, "=")
		if !ok || name != names[i] {
			return 0, 0, 0, fmt.Errorf("parameter %d: want %s=<decimal>", i+1, names[i])
		}
		v, err := parsePHCDecimal(val)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("parameter %s: %v", name, err)
		}
		vals[i] = v
	}
	if vals[2] > 255 {
		return 0, 0, 0, fmt.Errorf("argon2 parallelism %d out of range [1, 255]", vals[2])
	}
	return vals[0], vals[1], vals[2], nil
}

// parsePHCDecimal parses a PHC decimal: ASCII digits, no sign, no leading
// zero except for "0" itself, fitting in 32 bits.
func parsePHCDecimal(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty value")
	}
	if len(s) > 10 {
		return 0, errors.New("value too long")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("value %q is not a decimal", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("value %q has a leading zero", s)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("value %q out of range", s)
	}
	return uint32(v), nil
}

// decodePHCBase64 decodes unpadded standard base64, rejecting padding,
// non-zero trailing bits and the line breaks package base64 would skip.
func decodePHCBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n=") {
		return nil, errors.New("padding or line break in base64")
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %v", err)
	}
	return b, nil
}

// encodePHC formats an argon2id PHC string; it is the inverse of ParsePHC.
func encodePHC(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s",
		phcPrefix, p.MemoryKiB, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}
