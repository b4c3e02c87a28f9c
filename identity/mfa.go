package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity/totp"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/seal"
)

// MFA is the second-factor part of the Service: TOTP enrolment (RFC
// 6238), verification of codes and recovery codes at login, and their
// administration. Codes are counted by the same guessing counters as
// passwords (LockoutPolicy): a wrong code is a failed login attempt, so
// guessing a code is throttled per account and network on every replica.
type MFA struct {
	Factors       FactorStore
	RecoveryCodes RecoveryCodeStore
	// Sealer seals TOTP secrets under the secrets key.
	Sealer *seal.Sealer
	// Issuer names the service in authenticator apps (the otpauth URI's
	// issuer).
	Issuer string
}

// RecoveryCodeCount is how many recovery codes a user gets at once.
const RecoveryCodeCount = 10

// Errors of the second-factor methods (apperr semantics).
var (
	// ErrInvalidCode: a TOTP or recovery code that is wrong, malformed,
	// already used, or of a factor the user does not have.
	ErrInvalidCode = &apperr.Error{Code: apperr.EUnauthorized, Message: "invalid one-time code"}
	// ErrFactorExists: the user already has a confirmed TOTP factor.
	ErrFactorExists = &apperr.Error{Code: apperr.EConflict, Message: "a TOTP factor is already enrolled; remove it first"}
	// ErrNoFactor: no such factor of the user (or not one awaiting
	// confirmation).
	ErrNoFactor = &apperr.Error{Code: apperr.ENotFound, Message: "no such factor"}
	// errNoMFA: the Service was built without second factors.
	errNoMFA = errors.New("second factors are not configured")
	// errNoSecretsKey: TOTP secrets cannot be sealed or opened without
	// the secrets key.
	errNoSecretsKey = errors.New("the secrets key is not available to seal or open TOTP secrets")
)

// Enrolment is a TOTP factor awaiting confirmation: the secret to put in
// an authenticator app, as text and as an otpauth URI (and a QR code of
// it).
type Enrolment struct {
	FactorID string
	Secret   string
	URI      string
	key      *totp.Key
}

// QRCode returns the otpauth URI as a size×size PNG QR code.
func (e *Enrolment) QRCode(size int) ([]byte, error) { return e.key.PNG(size) }

func (s *Service) mfa() (*MFA, error) {
	if s.MFA == nil || s.MFA.Factors == nil || s.MFA.RecoveryCodes == nil {
		return nil, errNoMFA
	}
	return s.MFA, nil
}

// sealer returns the Sealer of TOTP secrets.
func (m *MFA) sealer() (*seal.Sealer, error) {
	if m.Sealer == nil {
		return nil, errNoSecretsKey
	}
	return m.Sealer, nil
}

// check opens f's secret and verifies code at now (RFC 6238, ±1 step,
// only steps after f.LastUsedStep): the code's step, or ErrInvalidCode.
func (m *MFA) check(f *Factor, code string, now time.Time) (int64, error) {
	sealer, err := m.sealer()
	if err != nil {
		return 0, err
	}
	secret, err := totp.OpenSecret(sealer, f.ID, f.WrapKeyID, f.Sealed)
	if err != nil {
		return 0, fmt.Errorf("open factor secret: %w", err)
	}
	step, ok := totp.Verify(secret, code, now, f.LastUsedStep)
	if !ok {
		return 0, ErrInvalidCode
	}
	return step, nil
}

// ConfirmedFactor returns the user's confirmed TOTP factor, or nil (and no
// error) when the user has none.
func (s *Service) ConfirmedFactor(ctx context.Context, userID string) (*Factor, error) {
	m, err := s.mfa()
	if err != nil {
		return nil, nil
	}
	fs, err := m.Factors.Factors(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("load factors: %w", err)
	}
	for _, f := range fs {
		if f.Kind == FactorTOTP && f.Confirmed() {
			return f, nil
		}
	}
	return nil, nil
}

// UsersWithConfirmedFactor returns the set of IDs of the users who have a
// confirmed factor (none when second factors are not configured).
func (s *Service) UsersWithConfirmedFactor(ctx context.Context) (map[string]bool, error) {
	m, err := s.mfa()
	if err != nil {
		return map[string]bool{}, nil
	}
	ids, err := m.Factors.UsersWithConfirmedFactor(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users with a second factor: %w", err)
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

// NeedsSecondFactor reports whether u must prove a second factor to log
// in: an administrator requires it, or the user has one.
func (s *Service) NeedsSecondFactor(ctx context.Context, u *User) (bool, error) {
	if u.MFARequired {
		return true, nil
	}
	f, err := s.ConfirmedFactor(ctx, u.ID)
	return f != nil, err
}

// BeginTOTP starts the enrolment of a TOTP factor for u: it stores a new
// unconfirmed factor (replacing any earlier unfinished one) and returns
// its secret. It fails with ErrFactorExists when u already has a
// confirmed TOTP factor.
func (s *Service) BeginTOTP(ctx context.Context, u *User) (*Enrolment, error) {
	m, err := s.mfa()
	if err != nil {
		return nil, err
	}
	sealer, err := m.sealer()
	if err != nil {
		return nil, err
	}
	key, err := totp.Generate(m.Issuer, u.Username)
	if err != nil {
		return nil, err
	}
	f := &Factor{ID: uuid.NewString(), UserID: u.ID, Kind: FactorTOTP, CreatedAt: s.now().UTC()}
	if f.WrapKeyID, f.Sealed, err = totp.SealSecret(sealer, f.ID, key.Secret()); err != nil {
		return nil, err
	}
	err = s.Store.InTx(ctx, func(ctx context.Context) error {
		fs, err := m.Factors.Factors(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("load factors: %w", err)
		}
		for _, g := range fs {
			if g.Kind != FactorTOTP {
				continue
			}
			if g.Confirmed() {
				return ErrFactorExists
			}
			if err := m.Factors.DeleteFactor(ctx, u.ID, g.ID); err != nil && !errors.Is(err, apperr.ErrNotFound) {
				return fmt.Errorf("delete unfinished factor: %w", err)
			}
		}
		if err := m.Factors.CreateFactor(ctx, f); err != nil {
			return fmt.Errorf("store factor: %w", err)
		}
		return s.recordMFA(ctx, audit.MFAEnrol, u)
	})
	if err != nil {
		return nil, err
	}
	return &Enrolment{FactorID: f.ID, Secret: key.Secret(), URI: key.URI(), key: key}, nil
}

// ConfirmTOTP finishes the enrolment of u's factor factorID with code, a
// login attempt from clientIP counted as such (a wrong code is a failed
// attempt). When u had no confirmed factor before, it returns a new set of
// recovery codes (shown once; only their digests are stored). It fails
// with ErrInvalidCode for a wrong or replayed code, ErrNoFactor when
// factorID is not u's factor awaiting confirmation, and an error matching
// ErrThrottled when the attempt is held back.
func (s *Service) ConfirmTOTP(ctx context.Context, u *User, factorID, code, clientIP string) ([]string, error) {
	m, err := s.mfa()
	if err != nil {
		return nil, err
	}
	fs, err := m.Factors.Factors(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("load factors: %w", err)
	}
	var f *Factor
	hadConfirmed := false
	for _, g := range fs {
		if g.ID == factorID && g.Kind == FactorTOTP && !g.Confirmed() {
			f = g
		}
		hadConfirmed = hadConfirmed || g.Confirmed()
	}
	if f == nil {
		return nil, ErrNoFactor
	}
	now := s.now().UTC()
	if err := s.reserve(ctx, u.Username, clientIP, now); err != nil {
		s.recordCodeFailure(ctx, u, err)
		return nil, err
	}
	step, err := m.check(f, code, now)
	if err != nil {
		s.recordCodeFailure(ctx, u, err)
		return nil, err
	}
	// The first confirmed factor comes with recovery codes, stored and
	// recorded in the confirmation's transaction.
	var plain []string
	var hashes [][]byte
	if !hadConfirmed {
		if plain, hashes, err = totp.NewRecoveryCodes(RecoveryCodeCount); err != nil {
			return nil, err
		}
	}
	err = s.Store.InTx(ctx, func(ctx context.Context) error {
		if ok, err := m.Factors.ConfirmFactor(ctx, u.ID, f.ID, step, now); err != nil {
			return fmt.Errorf("confirm factor: %w", err)
		} else if !ok {
			return ErrInvalidCode
		}
		if err := s.recordMFA(ctx, audit.MFAConfirm, u); err != nil {
			return err
		}
		if hadConfirmed {
			return nil
		}
		return s.replaceRecoveryCodes(ctx, m, u, hashes)
	})
	if err != nil {
		s.recordCodeFailure(ctx, u, err)
		return nil, err
	}
	if err := s.succeeded(ctx, u.Username, clientIP); err != nil {
		return nil, err
	}
	return plain, nil
}

// NewRecoveryCodes replaces u's recovery codes with RecoveryCodeCount new
// ones and returns them (shown once; only their digests are stored).
func (s *Service) NewRecoveryCodes(ctx context.Context, u *User) ([]string, error) {
	m, err := s.mfa()
	if err != nil {
		return nil, err
	}
	plain, hashes, err := totp.NewRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		return nil, err
	}
	if err := s.Store.InTx(ctx, func(ctx context.Context) error { return s.replaceRecoveryCodes(ctx, m, u, hashes) }); err != nil {
		return nil, err
	}
	return plain, nil
}

// replaceRecoveryCodes stores hashes as u's recovery codes and records it,
// in the transaction ctx carries.
func (s *Service) replaceRecoveryCodes(ctx context.Context, m *MFA, u *User, hashes [][]byte) error {
	if err := m.RecoveryCodes.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
		return fmt.Errorf("store recovery codes: %w", err)
	}
	return s.recordMFA(ctx, audit.MFARecoveryCodes, u)
}

// RemoveFactor deletes u's factor factorID; removing the last confirmed
// one also deletes u's recovery codes. ErrNoFactor when u has no such
// factor.
func (s *Service) RemoveFactor(ctx context.Context, u *User, factorID string) error {
	m, err := s.mfa()
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(ctx context.Context) error {
		if err := m.Factors.DeleteFactor(ctx, u.ID, factorID); errors.Is(err, apperr.ErrNotFound) {
			return ErrNoFactor
		} else if err != nil {
			return fmt.Errorf("delete factor: %w", err)
		}
		left, err := s.ConfirmedFactor(ctx, u.ID)
		if err != nil {
			return err
		}
		if left == nil {
			if err := m.RecoveryCodes.ReplaceRecoveryCodes(ctx, u.ID, nil); err != nil && !errors.Is(err, apperr.ErrNotFound) {
				return fmt.Errorf("delete recovery codes: %w", err)
			}
		}
		return s.recordMFA(ctx, audit.MFARemove, u)
	})
}

// ResetFactors deletes every factor and recovery code of the user with ID
// userID (an administrator's reset for a user who lost their device). It
// returns apperr.ErrNotFound (matched) for no such user.
func (s *Service) ResetFactors(ctx context.Context, userID string) error {
	return s.ResetFactorsIf(ctx, userID, nil)
}

// ResetFactorsIf is ResetFactors, made only if match, when not nil,
// accepts the user's current Version (If-Match), checked under the row
// lock in the reset's transaction: otherwise nothing changes and
// ErrVersionMismatch is returned.
func (s *Service) ResetFactorsIf(ctx context.Context, userID string, match func(version string) bool) error {
	m, err := s.mfa()
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(ctx context.Context) error {
		if match != nil {
			if err := s.checkVersion(ctx, userID, match); err != nil {
				return err
			}
		} else if _, err := s.Store.GetUser(ctx, userID); err != nil {
			return err
		}
		fs, err := m.Factors.Factors(ctx, userID)
		if err != nil {
			return fmt.Errorf("load factors: %w", err)
		}
		for _, f := range fs {
			if err := m.Factors.DeleteFactor(ctx, userID, f.ID); err != nil && !errors.Is(err, apperr.ErrNotFound) {
				return fmt.Errorf("delete factor: %w", err)
			}
		}
		if err := m.RecoveryCodes.ReplaceRecoveryCodes(ctx, userID, nil); err != nil && !errors.Is(err, apperr.ErrNotFound) {
			return fmt.Errorf("delete recovery codes: %w", err)
		}
		return s.record(ctx, audit.UserMFAReset, audit.UserTarget(userID))
	})
}

// FactorSummary lists a user's factors and how many recovery codes are
// left.
func (s *Service) FactorSummary(ctx context.Context, userID string) ([]*Factor, int, error) {
	m, err := s.mfa()
	if err != nil {
		return nil, 0, err
	}
	fs, err := m.Factors.Factors(ctx, userID)
	if err != nil {
		return nil, 0, fmt.Errorf("load factors: %w", err)
	}
	n, err := m.RecoveryCodes.RecoveryCodesLeft(ctx, userID)
	if err != nil {
		return nil, 0, fmt.Errorf("count recovery codes: %w", err)
	}
	return fs, n, nil
}

// VerifySecondFactor checks a TOTP code (otp) or, when otp is empty, a
// recovery code of u, presented in a login from clientIP whose password
// was checked already. The attempt is counted before it is checked, like
// a password (a wrong code is a failed login, audit.LoginSecondFactor); an
// accepted code is used up (its time step, or the recovery code, whose use
// is recorded as audit.MFARecoveryCodeUsed in the same transaction) on
// every replica before this returns. It returns nil on success,
// ErrInvalidCode, or an error matching ErrThrottled. It does not reset the
// guessing counters: call LoginSucceeded once the login is complete.
func (s *Service) VerifySecondFactor(ctx context.Context, u *User, otp, recoveryCode, clientIP string) error {
	err := s.verifySecondFactor(ctx, u, otp, recoveryCode, clientIP)
	s.recordCodeFailure(ctx, u, err)
	return err
}

// recordCodeFailure records err, the outcome of u's second-factor attempt,
// if it is a wrong code (audit.LoginSecondFactor) or a held-back attempt
// (audit.LoginThrottled); nothing otherwise.
func (s *Service) recordCodeFailure(ctx context.Context, u *User, err error) {
	switch {
	case errors.Is(err, ErrInvalidCode):
		s.recordLogin(ctx, audit.LoginSecondFactor, u, audit.OutcomeFailure)
	case errors.Is(err, ErrThrottled):
		s.recordLogin(ctx, audit.LoginThrottled, u, audit.OutcomeFailure)
	}
}

func (s *Service) verifySecondFactor(ctx context.Context, u *User, otp, recoveryCode, clientIP string) error {
	m, err := s.mfa()
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if err := s.reserve(ctx, u.Username, clientIP, now); err != nil {
		return err
	}
	if otp == "" {
		hash, ok := totp.HashRecoveryCode(recoveryCode)
		if !ok {
			return ErrInvalidCode
		}
		return s.Store.InTx(ctx, func(ctx context.Context) error {
			used, err := m.RecoveryCodes.UseRecoveryCode(ctx, u.ID, hash)
			if err != nil {
				return fmt.Errorf("use recovery code: %w", err)
			}
			if !used {
				return ErrInvalidCode
			}
			return s.record(audit.WithActor(ctx, audit.UserTarget(u.ID)), audit.MFARecoveryCodeUsed, audit.UserTarget(u.ID))
		})
	}
	f, err := s.ConfirmedFactor(ctx, u.ID)
	if err != nil {
		return err
	}
	if f == nil {
		return ErrInvalidCode
	}
	step, err := m.check(f, otp, now)
	if err != nil {
		return err
	}
	used, err := m.Factors.UseTOTPStep(ctx, f.ID, step)
	if err != nil {
		return fmt.Errorf("use code: %w", err)
	}
	if !used {
		return ErrInvalidCode
	}
	return nil
}

// LoginSucceeded records a complete login (every factor proven) of u from
// clientIP: as a successful password login does, it resets the network's
// counter and trusts the network for the account. secondFactor says
// whether the login proved a second factor: its password, if it had one,
// was then recorded as audit.LoginPassword (AuthenticateStep), and
// LoginSucceeded records the complete login (audit.Login); without, the
// password step recorded it already, so that each login is recorded once.
func (s *Service) LoginSucceeded(ctx context.Context, u *User, clientIP string, secondFactor bool) error {
	if secondFactor {
		s.recordLogin(ctx, audit.Login, u, audit.OutcomeSuccess)
	}
	return s.succeeded(ctx, u.Username, clientIP)
}

// recordMFA writes the audit event of u's change of their own second
// factors in the transaction ctx carries, the change's: an error fails the
// change. The user acts unless ctx names an actor.
func (s *Service) recordMFA(ctx context.Context, action string, u *User) error {
	if !audit.HasActor(ctx) {
		ctx = audit.WithActor(ctx, audit.UserTarget(u.ID))
	}
	return s.record(ctx, action, audit.UserTarget(u.ID))
}
