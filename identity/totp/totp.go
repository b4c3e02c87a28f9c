package totp

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// The parameters of every key this package makes: what every
// authenticator app supports (Google Authenticator ignores any other).
const (
	// SecretSize is the size of a secret in bytes: 160 bits, the length
	// RFC 4226 §4 recommends (it requires at least 128).
	SecretSize = 20
	// Digits is the number of digits of a code.
	Digits = 6
	// Period is the time step (RFC 6238 §4.1, X).
	Period = 30 * time.Second
	// Skew is how many steps before and after the current one Verify
	// accepts (RFC 6238 §5.2).
	Skew = 1
)

// PNG size bounds, in pixels.
const (
	minPNGSize = 64
	maxPNGSize = 1024
)

// Errors of Generate and Key.PNG. They never contain the input.
var (
	// ErrInvalidName is returned by Generate for an empty issuer or
	// account name, or one holding a colon (the Key URI format separates
	// the two with one).
	ErrInvalidName = errors.New("totp: issuer and account name must be non-empty and contain no colon")
	// ErrImageSize is returned by Key.PNG for a size out of bounds.
	ErrImageSize = fmt.Errorf("totp: QR code size must be %d to %d pixels", minPNGSize, maxPNGSize)
)

// b32 is the secret encoding: base32 (RFC 4648 §6) without padding, as the
// Key URI format writes it.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Key is a new TOTP key, for enrolment: its secret, and the URI and QR code
// an authenticator app reads it from. Keep the secret sealed (SealSecret);
// never log it.
type Key struct {
	secret string
	uri    string
}

// Generate returns a new key for accountName (the username) at issuer (the
// service's name as the app shows it), with a 160-bit secret from
// crypto/rand, SHA-1, 6 digits and a 30-second step. It fails with
// ErrInvalidName for an empty name or one with a colon, or with the error
// of the random source.
func Generate(issuer, accountName string) (*Key, error) {
	return generate(rand.Reader, issuer, accountName)
}

func generate(random io.Reader, issuer, accountName string) (*Key, error) {
	if issuer == "" || accountName == "" || strings.Contains(issuer, ":") || strings.Contains(accountName, ":") {
		return nil, ErrInvalidName
	}
	raw := make([]byte, SecretSize)
	if _, err := io.ReadFull(random, raw); err != nil {
		return nil, fmt.Errorf("totp: random secret: %w", err)
	}
	secret := b32.EncodeToString(raw)
	// The Key URI format
	// (https://github.com/google/google-authenticator/wiki/Key-Uri-Format):
	// otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30,
	// the label's parts and every value percent-encoded (all but RFC 3986's
	// unreserved characters), spaces as %20: some apps read a + as a
	// space, others as a plus sign.
	uri := "otpauth://totp/" + queryEscape(issuer) + ":" + queryEscape(accountName) +
		"?secret=" + secret +
		"&issuer=" + queryEscape(issuer) +
		"&algorithm=SHA1&digits=6&period=30"
	return &Key{secret: secret, uri: uri}, nil
}

// queryEscape escapes s for a query value, writing a space as %20.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Secret returns the secret in base32 without padding: what Verify and
// SealSecret take, and what a user types into an app that cannot scan
// the QR code.
func (k *Key) Secret() string { return k.secret }

// URI returns the otpauth:// URI of the key (Google Authenticator Key URI
// format), which holds the secret.
func (k *Key) URI() string { return k.uri }

// PNG returns a QR code of URI as a size×size PNG image. size must be
// between 64 and 1024 pixels (ErrImageSize); a size too small for the
// code's modules also fails.
func (k *Key) PNG(size int) ([]byte, error) {
	if size < minPNGSize || size > maxPNGSize {
		return nil, ErrImageSize
	}
	ok, err := otp.NewKeyFromURL(k.uri)
	if err != nil {
		return nil, fmt.Errorf("totp: parse key URI: %w", err)
	}
	img, err := ok.Image(size, size)
	if err != nil {
		return nil, fmt.Errorf("totp: QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("totp: encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// StepAt returns the time step (RFC 6238 §4.2, T) that t falls in: the
// number of whole periods since the Unix epoch.
func StepAt(t time.Time) int64 {
	s := t.Unix()
	p := int64(Period / time.Second)
	if s < 0 {
		return (s - p + 1) / p // floor, not truncation
	}
	return s / p
}

// Verify reports whether code is the 6-digit code of secret (base32,
// padded or not, any case) for the step now falls in or the step before
// or after it, and is for a step greater than lastUsedStep; step is then
// the step it matched, which the caller must record as the factor's last
// used step (identity.FactorStore.UseTOTPStep) so that the code, and every
// earlier one, cannot be used again. Of two matching steps the earlier
// one past lastUsedStep is returned.
//
// code must be exactly 6 ASCII digits: anything else (spaces, other
// lengths, non-ASCII digits) is refused. The digits are checked and the
// codes of all three steps compared in constant time, so the time taken
// does not tell which digits were right. An undecodable secret verifies
// nothing.
func Verify(secret string, code string, now time.Time, lastUsedStep int64) (step int64, ok bool) {
	valid := wellFormed(code)
	key, err := decodeSecret(secret)
	if err != nil {
		return 0, false
	}
	cur := StepAt(now)
	matched := make([]bool, 0, 2*Skew+1)
	for s := cur - Skew; s <= cur+Skew; s++ {
		want := hotpCode(key, s, Digits, otp.AlgorithmSHA1)
		m := subtle.ConstantTimeCompare([]byte(want), []byte(code)) & valid
		matched = append(matched, m == 1 && s >= 0)
	}
	for i, m := range matched {
		if s := cur - Skew + int64(i); m && s > lastUsedStep {
			return s, true
		}
	}
	return 0, false
}

// wellFormed returns 1 when code is exactly Digits ASCII digits, else 0,
// looking at every byte whatever it finds.
func wellFormed(code string) int {
	if len(code) != Digits {
		return 0
	}
	ok := 1
	for i := range len(code) {
		c := int(code[i])
		// 1 when '0' <= c <= '9', computed without a branch.
		ok &= int((uint(c-'0')|uint('9'-c))>>(uintBits-1)) ^ 1
	}
	return ok
}

// uintBits is the size of uint in bits.
const uintBits = 32 << (^uint(0) >> 63)

// decodeSecret decodes a base32 secret, padded or not, in either case.
func decodeSecret(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.TrimRight(secret, "="))
	b, err := b32.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("totp: secret is not base32")
	}
	return b, nil
}

// hotpCode returns the HOTP value (RFC 4226 §5.3) of key for counter step
// with the given number of digits and HMAC algorithm: the TOTP code of
// step (RFC 6238 §4.2), computed by github.com/pquerna/otp/hotp.
func hotpCode(key []byte, step int64, digits int, alg otp.Algorithm) string {
	if step < 0 {
		return ""
	}
	code, err := hotp.GenerateCodeCustom(b32.EncodeToString(key), uint64(step), hotp.ValidateOpts{
		Digits: otp.Digits(digits), Algorithm: alg,
	})
	if err != nil { // unreachable: the secret was just encoded
		return ""
	}
	return code
}

// codeAt returns the TOTP code of key at t, with digits digits and alg:
// the function RFC 6238 Appendix B's test vectors check.
func codeAt(key []byte, t time.Time, digits int, alg otp.Algorithm) string {
	return hotpCode(key, StepAt(t), digits, alg)
}
