package identity

import (
	"context"
	"time"
)

// FactorTOTP is the Kind of a TOTP factor (RFC 6238, package
// identity/totp).
const FactorTOTP = "totp"

// Factor is a second authentication factor of a user. Its secret is stored
// sealed under the secrets key (identity/totp.SealSecret, bound to ID);
// stores keep the sealed bytes and never see the secret.
type Factor struct {
	// ID is the factor's stable, opaque identifier (a UUID), to which its
	// sealed secret is bound.
	ID string
	// UserID is the user the factor belongs to.
	UserID string
	// Kind is what the factor is: FactorTOTP.
	Kind string
	// Sealed is the sealed secret; WrapKeyID names the secrets key that
	// sealed it.
	Sealed    []byte
	WrapKeyID string
	// ConfirmedAt is when the user proved, with a valid code, that the
	// factor works; zero while enrolment is unfinished. Only a confirmed
	// factor may be asked for at login.
	ConfirmedAt time.Time
	// LastUsedStep is the last TOTP time step a code was accepted for (0
	// before the first); a code is accepted only for a later step
	// (FactorStore.UseTOTPStep).
	LastUsedStep int64
	CreatedAt    time.Time
}

// Confirmed reports whether the factor's enrolment is finished.
func (f *Factor) Confirmed() bool { return !f.ConfirmedAt.IsZero() }

// FactorStore persists second factors. Implementations return errors
// matching apperr.ErrNotFound and apperr.ErrAlreadyExists (errors.Is), and
// apperr.ErrUnavailable when the database is unreachable. Deleting a user
// deletes their factors.
type FactorStore interface {
	// CreateFactor inserts f, unconfirmed or not as f says; a zero
	// CreatedAt is set to the current time (and written back to f). It
	// fails with apperr.ErrNotFound when f.UserID is no user and with
	// apperr.ErrAlreadyExists when f.ID is taken; nothing is written then.
	CreateFactor(ctx context.Context, f *Factor) error
	// Factors returns every factor of the user, confirmed or not, oldest
	// first; none (and no error) for a user without factors or no such
	// user.
	Factors(ctx context.Context, userID string) ([]*Factor, error)
	// ConfirmFactor finishes the enrolment of the user's factor factorID
	// with the code of TOTP step step: it sets ConfirmedAt to at and
	// LastUsedStep to step in one conditional update, and reports true,
	// only if the factor is still unconfirmed and its LastUsedStep is
	// below step. It reports false, without error, otherwise (already
	// confirmed, a step not later than the last used, or no such factor of
	// that user). Of concurrent calls, on any replicas, at most one
	// reports true.
	ConfirmFactor(ctx context.Context, userID, factorID string, step int64, at time.Time) (bool, error)
	// UseTOTPStep records that a code of step was accepted for the
	// confirmed factor factorID at login: it sets LastUsedStep to step,
	// and reports true, only if the factor is confirmed and its stored
	// LastUsedStep is below step (one conditional update). It reports
	// false, without error and writing nothing, for a step not later than
	// the last used (a replay, also one racing on another replica: of
	// concurrent calls with one step exactly one reports true), an
	// unconfirmed factor (its enrolment is unfinished: only ConfirmFactor
	// takes a code for it) or an unknown factor.
	UseTOTPStep(ctx context.Context, factorID string, step int64) (bool, error)
	// DeleteFactor removes the user's factor factorID or returns
	// apperr.ErrNotFound.
	DeleteFactor(ctx context.Context, userID, factorID string) error
	// UsersWithConfirmedFactor returns the IDs of every user who has a
	// confirmed factor, each once, in no particular order (one query, for
	// listing users with their second-factor status).
	UsersWithConfirmedFactor(ctx context.Context) ([]string, error)
}

// RecoveryCodeStore persists the one-time recovery codes of users as
// SHA-256 digests (identity/totp.HashRecoveryCode). Errors as for
// FactorStore. Deleting a user deletes their codes.
type RecoveryCodeStore interface {
	// ReplaceRecoveryCodes deletes every recovery code of the user and
	// stores hashes (32 bytes each) instead, in one transaction; no
	// hashes leaves the user without codes. It fails with
	// apperr.ErrNotFound when userID is no user, and with an error,
	// writing nothing, for a hash that is not 32 bytes or given twice.
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error
	// UseRecoveryCode marks the user's code whose digest is hash as used
	// and reports true, only if it is unused (one conditional update);
	// otherwise, or for no such code, it reports false without error. Of
	// concurrent calls with one code, on any replicas, exactly one
	// reports true.
	UseRecoveryCode(ctx context.Context, userID string, hash []byte) (bool, error)
	// RecoveryCodesLeft returns how many of the user's recovery codes are
	// unused.
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
}
