package totp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Recovery codes: RecoveryCodeGroups groups of RecoveryCodeGroupSize
// characters of the Crockford base32 alphabet, lower case, joined by
// dashes ("7kq2m-x9d0c-4hv8t"): 75 random bits each. The alphabet has
// no i, l, o or u, so what a user reads cannot be mistaken; on input, i
// and l are read as 1 and o as 0, case, spaces and dashes are ignored.
const (
	RecoveryCodeGroups    = 3
	RecoveryCodeGroupSize = 5
	// MaxRecoveryCodes bounds n of NewRecoveryCodes.
	MaxRecoveryCodes = 100
)

// recoveryAlphabet is Crockford's base32, lower case.
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// recoveryCodeLen is the number of characters of a normalized code.
const recoveryCodeLen = RecoveryCodeGroups * RecoveryCodeGroupSize

// maxRecoveryInput bounds the input MatchRecoveryCode looks at.
const maxRecoveryInput = 64

// ErrRecoveryCount is returned by NewRecoveryCodes for n out of bounds.
var ErrRecoveryCount = fmt.Errorf("totp: the number of recovery codes must be 1 to %d", MaxRecoveryCodes)

// NewRecoveryCodes returns n new recovery codes from crypto/rand, to show
// the user once, and their SHA-256 digests (HashRecoveryCode), to store.
// Each code carries 75 random bits, so it cannot be guessed online and a
// fast hash protects it at rest, as for client secrets (see
// oauth/clients.HashSecret); a slow hash would only cost CPU. It fails
// with ErrRecoveryCount for n < 1 or n > MaxRecoveryCodes, or with the
// random source's error.
func NewRecoveryCodes(n int) (plain []string, hashes [][]byte, err error) {
	return newRecoveryCodes(rand.Reader, n)
}

func newRecoveryCodes(random io.Reader, n int) (plain []string, hashes [][]byte, err error) {
	if n < 1 || n > MaxRecoveryCodes {
		return nil, nil, ErrRecoveryCount
	}
	raw := make([]byte, recoveryCodeLen)
	for range n {
		if _, err := io.ReadFull(random, raw); err != nil {
			return nil, nil, fmt.Errorf("totp: random recovery code: %w", err)
		}
		var b strings.Builder
		for i, c := range raw {
			if i > 0 && i%RecoveryCodeGroupSize == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[c&31]) // 256 is a multiple of 32: unbiased
		}
		code := b.String()
		h, _ := HashRecoveryCode(code)
		plain, hashes = append(plain, code), append(hashes, h)
	}
	return plain, hashes, nil
}

// errRecoveryCode is what normalizeRecoveryCode says of anything that is
// not a recovery code.
var errRecoveryCode = errors.New("totp: not a recovery code")

// normalizeRecoveryCode returns code as generated, without dashes: lower
// case, spaces, tabs and dashes removed, i and l read as 1 and o as 0. It
// fails unless that leaves exactly recoveryCodeLen characters of the
// alphabet.
func normalizeRecoveryCode(code string) (string, error) {
	if len(code) > maxRecoveryInput {
		return "", errRecoveryCode
	}
	var b strings.Builder
	for i := range len(code) {
		c := code[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch c {
		case ' ', '\t', '-':
			continue
		case 'i', 'l':
			c = '1'
		case 'o':
			c = '0'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 {
			return "", errRecoveryCode
		}
		b.WriteByte(c)
	}
	if b.Len() != recoveryCodeLen {
		return "", errRecoveryCode
	}
	return b.String(), nil
}

// HashRecoveryCode returns the stored form of a recovery code: the
// SHA-256 digest of its normalized form (lower case, no spaces or dashes,
// i and l as 1, o as 0), so that "7KQ2M X9D0C 4HV8T" hashes as
// "7kq2m-x9d0c-4hv8t" does. ok is false, and the digest nil, for input
// that cannot be a recovery code. Look a code up with the digest
// (identity.RecoveryCodeStore.UseRecoveryCode).
func HashRecoveryCode(code string) (hash []byte, ok bool) {
	norm, err := normalizeRecoveryCode(code)
	if err != nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(norm))
	return sum[:], true
}

// MatchRecoveryCode reports whether code (normalized as by
// HashRecoveryCode) is one of the codes whose digests are hashes, and
// which: index is its position in hashes. Every digest is compared, in
// constant time, whether or not an earlier one matched.
func MatchRecoveryCode(code string, hashes [][]byte) (index int, ok bool) {
	h, valid := HashRecoveryCode(code)
	if !valid {
		return -1, false
	}
	index = -1
	for i, want := range hashes {
		m := subtle.ConstantTimeCompare(h, want)
		index = subtle.ConstantTimeSelect(m&subtle.ConstantTimeEq(int32(index), -1), i, index)
	}
	return index, index >= 0
}
