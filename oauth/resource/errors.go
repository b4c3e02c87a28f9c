package resource

import (
	"errors"
	"fmt"
)

// Error codes carried by [Error]. The first is RFC 6750 §3.1's; the second
// is used when the keys needed to decide are temporarily unavailable (the
// name follows RFC 6749 §4.1.2.1).
const (
	// CodeInvalidToken means the token is malformed, expired, revoked or
	// otherwise invalid (RFC 6750 §3.1); HTTP 401.
	CodeInvalidToken = "invalid_token"
	// CodeTemporarilyUnavailable means the issuer's keys could not be
	// obtained, so the token could be neither accepted nor rejected; HTTP 503.
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Sentinel errors wrapped by the [*Error] values that [Verifier.Verify]
// returns; test them with errors.Is.
var (
	// ErrMalformed: not a well-formed compact JWS / JWT, a registered claim
	// has the wrong JSON type (RFC 7519 §4.1: a NumericDate is a number,
	// never a string), or the header or claims repeat a member name.
	ErrMalformed = errors.New("malformed token")
	// ErrTooLarge: the token is longer than MaxTokenSize.
	ErrTooLarge = errors.New("token too large")
	// ErrUnsupportedType: the typ header is missing or not at+jwt.
	ErrUnsupportedType = errors.New("token type is not at+jwt")
	// ErrCriticalHeader: the token has a crit (or b64) header.
	ErrCriticalHeader = errors.New("token has critical header parameters")
	// ErrAlgorithm: the header alg is unsupported or differs from the key's alg.
	ErrAlgorithm = errors.New("token algorithm not allowed for key")
	// ErrUnknownKey: no key with the token's kid is published by the issuer.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrExpired: exp has passed (beyond the leeway).
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: nbf is in the future (beyond the leeway).
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrIssuedInFuture: iat or auth_time is in the future (beyond the
	// leeway).
	ErrIssuedInFuture = errors.New("token issued in the future")
	// ErrIssuer: iss is not the configured issuer.
	ErrIssuer = errors.New("wrong issuer")
	// ErrAudience: aud does not contain the configured audience.
	ErrAudience = errors.New("wrong audience")
	// ErrMissingClaim: a required claim (exp, iat, sub, client_id, jti) is absent.
	ErrMissingClaim = errors.New("missing required claim")
	// ErrKeysUnavailable: the key set could not be consulted (for example
	// the issuer has never been reachable). Carried with
	// CodeTemporarilyUnavailable.
	ErrKeysUnavailable = errors.New("signing keys unavailable")
)

// Error is the error returned by [Verifier.Verify]. Code is an RFC 6750
// error code ([CodeInvalidToken] or [CodeTemporarilyUnavailable]);
// Description is a short text that is safe to send to the client (it never
// includes token contents); Err is the underlying cause, which wraps one of
// the Err* sentinels of this package.
type Error struct {
	Code        string
	Description string
	Err         error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("resource: %s: %s", e.Code, e.Description)
	}
	return fmt.Sprintf("resource: %s: %s: %v", e.Code, e.Description, e.Err)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// invalid returns an invalid_token error wrapping sentinel (and cause, when
// not nil) with the sentinel's text as description.
func invalid(sentinel, cause error) *Error {
	err := sentinel
	if cause != nil {
		err = fmt.Errorf("%w: %w", sentinel, cause)
	}
	return &Error{Code: CodeInvalidToken, Description: sentinel.Error(), Err: err}
}

// invalidf is invalid with a more specific, client-safe description.
func invalidf(sentinel error, format string, args ...any) *Error {
	d := fmt.Sprintf(format, args...)
	return &Error{Code: CodeInvalidToken, Description: d, Err: fmt.Errorf("%w: %s", sentinel, d)}
}
