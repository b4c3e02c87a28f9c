// Package apperr is the one application error type shared by every
// Portcullis package, in the style of WTF Dial: a small set of codes that the
// HTTP layer maps to status codes in one table.
//
// Storage implementations translate driver errors into ErrNotFound and
// ErrAlreadyExists; domain packages return *Error values with a code and a
// message that is safe to show to clients. Anything else is internal and is
// never shown.
package apperr

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Code classifies an error. Codes are stable and appear in JSON error bodies.
type Code string

// Error codes.
const (
	ENotFound     Code = "not_found"
	EConflict     Code = "conflict"
	EInvalid      Code = "invalid_request"
	EUnauthorized Code = "unauthorized"
	EForbidden    Code = "forbidden"
	ETooLarge     Code = "request_too_large"
	// EPreconditionFailed is a conditional request whose condition
	// (If-Match) does not hold (HTTP 412): the resource changed since the
	// caller read it.
	EPreconditionFailed Code = "precondition_failed"
	// ETooManyRequests is a throttled request (HTTP 429); retry later.
	ETooManyRequests Code = "too_many_requests"
	EUnavailable     Code = "temporarily_unavailable"
	EInternal        Code = "server_error"
)

// Error is an application error whose Message may be shown to clients.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when positive, tells the client when to try again
	// (HTTP Retry-After) for ETooManyRequests and EUnavailable.
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrNotFound) matches any not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors returned by storage implementations.
var (
	ErrNotFound      = &Error{Code: ENotFound, Message: "not found"}
	ErrAlreadyExists = &Error{Code: EConflict, Message: "already exists"}
	ErrUnavailable   = &Error{Code: EUnavailable, Message: "the service is temporarily unavailable, retry later"}
)

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, or EInternal.
func CodeOf(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EInternal
}

// RetryAfterOf returns the RetryAfter of the first *Error in err's chain
// that has one.
func RetryAfterOf(err error) (time.Duration, bool) {
	for err != nil {
		if e, ok := err.(*Error); ok && e.RetryAfter > 0 {
			return e.RetryAfter, true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if d, ok := RetryAfterOf(inner); ok {
					return d, true
				}
			}
			return 0, false
		default:
			return 0, false
		}
	}
	return 0, false
}

// RetryAfterHeader returns the HTTP Retry-After value (RFC 9110 §10.2.3,
// whole seconds, rounded up) of the first *Error in err's chain that has a
// RetryAfter.
func RetryAfterHeader(err error) (string, bool) {
	d, ok := RetryAfterOf(err)
	if !ok {
		return "", false
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10), true
}

// MessageOf returns the client-safe message of the first *Error in err's
// chain, or a generic message for internal errors.
func MessageOf(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}
