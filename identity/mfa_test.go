package identity_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp"
	otptotp "github.com/pquerna/otp/totp"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/seal"
)

// mfaService is newService with second factors, sealing under a test key.
func mfaService(t *testing.T, lockout identity.LockoutPolicy) (*identity.Service, *clock) {
	t.Helper()
	s, store, c := newService(t, lockout)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s.MFA = &identity.MFA{Factors: store, RecoveryCodes: store, Sealer: sealer, Issuer: "Portcullis"}
	return s, c
}

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := otptotp.GenerateCodeCustom(secret, at, otptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSecondFactor: enrolment, the ±1 step window, each step and each
// recovery code once, and a right password that does not reset the
// guessing counters of a user who still owes the second factor.
func TestSecondFactor(t *testing.T) {
	s, c := mfaService(t, identity.LockoutPolicy{MaxFailures: 3, Window: time.Hour, Duration: time.Hour})
	ctx := t.Context()
	u := signup(t, s, "alice")
	if need, err := s.NeedsSecondFactor(ctx, u); err != nil || need {
		t.Fatalf("NeedsSecondFactor before enrolment = %v, %v", need, err)
	}
	e, err := s.BeginTOTP(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := s.ConfirmedFactor(ctx, u.ID); f != nil {
		t.Fatal("an unconfirmed factor counts as confirmed")
	}
	if _, err := s.ConfirmTOTP(ctx, u, e.FactorID, codeAt(t, e.Secret, c.Now().Add(-5*time.Minute)), "192.0.2.1"); !errors.Is(err, identity.ErrInvalidCode) {
		t.Fatalf("confirm with an old code: %v", err)
	}
	recovery, err := s.ConfirmTOTP(ctx, u, e.FactorID, codeAt(t, e.Secret, c.Now()), "192.0.2.1")
	if err != nil || len(recovery) != identity.RecoveryCodeCount {
		t.Fatalf("confirm: %d codes, %v", len(recovery), err)
	}
	if _, err := s.BeginTOTP(ctx, u); !errors.Is(err, identity.ErrFactorExists) {
		t.Fatalf("second enrolment: %v", err)
	}
	if need, _ := s.NeedsSecondFactor(ctx, u); !need {
		t.Fatal("a user with a confirmed factor does not need it")
	}

	// The confirming code's step is used; the next step (+1 window) is
	// good once; two steps ahead is outside the window.
	for _, tc := range []struct {
		at   time.Duration
		want error
	}{{0, identity.ErrInvalidCode}, {60 * time.Second, identity.ErrInvalidCode}, {30 * time.Second, nil}, {30 * time.Second, identity.ErrInvalidCode}} {
		err := s.VerifySecondFactor(ctx, u, codeAt(t, e.Secret, c.Now().Add(tc.at)), "", "192.0.2.9")
		if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Fatalf("code at %+v: %v, want %v", tc.at, err, tc.want)
		}
		_ = s.LoginSucceeded(ctx, u, "192.0.2.9", true)
	}
	if err := s.VerifySecondFactor(ctx, u, "", recovery[0], "192.0.2.9"); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if err := s.VerifySecondFactor(ctx, u, "", recovery[0], "192.0.2.9"); !errors.Is(err, identity.ErrInvalidCode) {
		t.Fatalf("recovery code twice: %v", err)
	}
	_ = s.LoginSucceeded(ctx, u, "192.0.2.9", true)

	// From a new network: right password (1), wrong code (2), right
	// password (3, resets nothing), and the next attempt is held back.
	ip := "198.51.100.7"
	if _, err := s.Authenticate(ctx, "alice", goodPassword, ip); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifySecondFactor(ctx, u, "000000", "", ip); !errors.Is(err, identity.ErrInvalidCode) && err != nil {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice", goodPassword, ip); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifySecondFactor(ctx, u, codeAt(t, e.Secret, c.Now()), "", ip); !errors.Is(err, identity.ErrThrottled) {
		t.Fatalf("4th attempt of a network that never finished a login: %v, want throttled", err)
	}

	// An administrator's reset: no factor, no recovery codes.
	if err := s.ResetFactors(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	fs, left, err := s.FactorSummary(ctx, u.ID)
	if err != nil || len(fs) != 0 || left != 0 {
		t.Fatalf("after reset: %d factors, %d codes, %v", len(fs), left, err)
	}
}
