package identity

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Bounds on the cost of bcrypt hashes accepted at import and at login. A
// bcrypt check takes 2^cost rounds of the Blowfish key schedule: cost 12,
// passlib's default, takes about 250 ms of one CPU; each step above
// doubles it, so cost 15 would hold a hashing slot for about 2 s per
// login and cost 31 for days.
const (
	// MinBcryptCost is the least cost accepted (bcrypt's own minimum).
	MinBcryptCost = 4
	// MaxBcryptCost is the greatest cost accepted.
	MaxBcryptCost = 14
)

// bcryptLength is the length of every bcrypt hash in the modular crypt
// format: "$2b$" and two cost digits, "$", 22 characters of salt and 31 of
// hash.
const bcryptLength = 60

// bcryptAlphabet is bcrypt's base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// isBcrypt reports whether encoded claims to be a bcrypt hash: it starts
// with "$2". ParseBcrypt says whether it is a valid one.
func isBcrypt(encoded string) bool { return strings.HasPrefix(encoded, "$2") }

// ParseBcrypt checks a bcrypt hash in the modular crypt format as passlib,
// OpenBSD and PHP write it,
//
//	$2b$<cost>$<22 characters of salt><31 characters of hash>
//
// with the prefix $2a$, $2b$ or $2y$ (the same algorithm; $2x$, the
// variant of a buggy implementation, is refused), a two-digit cost within
// MinBcryptCost..MaxBcryptCost and bcrypt's base64 alphabet. It returns the
// cost, or ErrMalformedHash wrapped with a detail that never repeats the
// hash.
func ParseBcrypt(encoded string) (cost int, err error) {
	fail := func(format string, args ...any) (int, error) {
		return 0, fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
	}
	if len(encoded) != bcryptLength {
		return fail("bcrypt hash is not %d characters long", bcryptLength)
	}
	switch encoded[:4] {
	case "$2a$", "$2b$", "$2y$":
	default:
		return fail("not a $2a$, $2b$ or $2y$ bcrypt hash")
	}
	c1, c2 := encoded[4], encoded[5]
	if c1 < '0' || c1 > '9' || c2 < '0' || c2 > '9' || encoded[6] != '$' {
		return fail("bcrypt cost is not two decimal digits")
	}
	cost = int(c1-'0')*10 + int(c2-'0')
	if cost < MinBcryptCost || cost > MaxBcryptCost {
		return fail("bcrypt cost %d out of range [%d, %d]", cost, MinBcryptCost, MaxBcryptCost)
	}
	for i := 7; i < len(encoded); i++ {
		if strings.IndexByte(bcryptAlphabet, encoded[i]) < 0 {
			return fail("bcrypt salt or hash outside the bcrypt base64 alphabet")
		}
	}
	return cost, nil
}

// verifyBcrypt reports whether password matches the bcrypt hash encoded.
// As every bcrypt implementation does, only the first 72 bytes of the
// password count. A hash ParseBcrypt refuses returns its error and does
// no bcrypt work.
func verifyBcrypt(password, encoded string) (bool, error) {
	if _, err := ParseBcrypt(encoded); err != nil {
		return false, err
	}
	err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(password))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("%w: %v", ErrMalformedHash, err)
	}
}

// ValidateHash checks a password hash brought from another system (Import):
// a bcrypt hash that ParseBcrypt accepts or an argon2id PHC string that
// ParsePHC accepts. It returns ErrMalformedHash wrapped with a detail that
// never repeats the hash.
func ValidateHash(encoded string) error {
	if isBcrypt(encoded) {
		_, err := ParseBcrypt(encoded)
		return err
	}
	_, _, _, err := ParsePHC(encoded)
	return err
}
