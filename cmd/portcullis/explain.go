package main

import (
	"errors"
	"net"
	"strings"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/seal"
)

// explain returns the one line the CLI prints for err: the error's own text,
// except for the two failures operators meet at start-up, which are
// rephrased to say what is wrong and what to do. An unreachable database is
// "the database is unavailable" and the root cause (the storage layers'
// wrapping repeats prefixes such as "migrate: storage: migrate:"), and a
// secrets key that does not open the sealed keys names
// PORTCULLIS_SECRETS_KEY and keys rewrap.
func explain(err error) string {
	msg := oneLine(err.Error())
	switch {
	case errors.Is(err, seal.ErrWrongKey):
		return msg + " (PORTCULLIS_SECRETS_KEY must be the secrets key the database was sealed with; " +
			"to change keys, set the new one as PORTCULLIS_SECRETS_KEY and the old one as " +
			"PORTCULLIS_SECRETS_KEY_OLD, then run `portcullis keys rewrap`)"
	case errors.Is(err, apperr.ErrUnavailable):
		step, _, _ := strings.Cut(msg, ":")
		return step + ": the database is unavailable: " + oneLine(rootCause(err).Error()) +
			" (check PORTCULLIS_DSN and that the database server is running)"
	}
	return msg
}

// rootCause follows err's wrapping to its innermost error, taking the last
// of several joined ones (fmt.Errorf("%w: %w") puts the cause last), and
// stopping at a network error, whose text names the address ("dial tcp
// HOST:PORT: connect: connection refused").
func rootCause(err error) error {
	for {
		if _, ok := err.(net.Error); ok {
			return err
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				return err
			}
			err = errs[len(errs)-1]
		case interface{ Unwrap() error }:
			next := u.Unwrap()
			if next == nil {
				return err
			}
			err = next
		default:
			return err
		}
	}
}
