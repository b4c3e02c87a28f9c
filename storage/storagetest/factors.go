package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/totp"
	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// newFactor returns an unconfirmed TOTP factor of userID created at
// created, with sealed bytes that hold a NUL, a trailing space and
// non-UTF-8 bytes (a BLOB must keep them all).
func newFactor(userID string, created time.Time) *identity.Factor {
	return &identity.Factor{
		ID: uuid.NewString(), UserID: userID, Kind: identity.FactorTOTP,
		Sealed: []byte("nonce\x00\xff\xfe sealed secret "), WrapKeyID: "sk-0123456789abcdef",
		CreatedAt: created,
	}
}

// codeHash returns a recovery-code digest for seed.
func codeHash(seed string) []byte {
	sum := sha256.Sum256([]byte(seed))
	return sum[:]
}

// twoUsers opens a store with the users alice and bob.
func twoUsers(t *testing.T, open Open) (s Store, ctx context.Context, alice, bob *identity.User) {
	t.Helper()
	s, ctx = open(t), ctxTimeout(t)
	alice, bob = newUser("alice"), newUser("bob")
	wantErr(t, "create alice", s.CreateUser(ctx, alice), nil)
	wantErr(t, "create bob", s.CreateUser(ctx, bob), nil)
	return s, ctx, alice, bob
}

// testFactors checks the factor methods: round trips, ownership (one
// user cannot confirm, use or delete another's factor), the conditional
// confirmation and step updates, and the errors.
func testFactors(t *testing.T, open Open) {
	s, ctx, alice, bob := twoUsers(t, open)
	f1 := newFactor(alice.ID, t0)
	f2 := newFactor(alice.ID, t0.Add(time.Second))
	f2.ConfirmedAt, f2.LastUsedStep = t0.Add(2*time.Second), 5
	g1 := newFactor(bob.ID, t0)
	for _, f := range []*identity.Factor{f2, f1, g1} {
		wantErr(t, "create factor", s.CreateFactor(ctx, f), nil)
	}
	factors := func(t *testing.T, userID string, want ...*identity.Factor) {
		t.Helper()
		got, err := s.Factors(ctx, userID)
		wantErr(t, "factors", err, nil)
		if want == nil {
			want = []*identity.Factor{}
		}
		same(t, "factors", got, want)
	}

	t.Run("RoundTrip", func(t *testing.T) {
		factors(t, alice.ID, f1, f2) // oldest first
		factors(t, bob.ID, g1)
		factors(t, "nobody")
		factors(t, alice.ID+" ") // byte for byte (MySQL's PAD SPACE)
		if !f2.Confirmed() || f1.Confirmed() {
			t.Fatal("Confirmed() disagrees with ConfirmedAt")
		}
		// alice has a confirmed factor, bob only an unconfirmed one.
		ids, err := s.UsersWithConfirmedFactor(ctx)
		wantErr(t, "users with a confirmed factor", err, nil)
		same(t, "users with a confirmed factor", ids, []string{alice.ID})
	})

	t.Run("UsersWithConfirmedFactorOnce", func(t *testing.T) {
		u := newUser("dave")
		wantErr(t, "create dave", s.CreateUser(ctx, u), nil)
		for range 2 {
			f := newFactor(u.ID, t0)
			f.ConfirmedAt = t0
			wantErr(t, "create factor", s.CreateFactor(ctx, f), nil)
		}
		ids, err := s.UsersWithConfirmedFactor(ctx)
		wantErr(t, "users with a confirmed factor", err, nil)
		slices.Sort(ids)
		want := []string{alice.ID, u.ID}
		slices.Sort(want)
		same(t, "users with a confirmed factor", ids, want)
		wantErr(t, "delete dave", s.DeleteUser(ctx, u.ID), nil)
	})

	t.Run("CreateErrors", func(t *testing.T) {
		dup := newFactor(bob.ID, t0)
		dup.ID = f1.ID
		wantErr(t, "duplicate ID", s.CreateFactor(ctx, dup), apperr.ErrAlreadyExists)
		wantErr(t, "unknown user", s.CreateFactor(ctx, newFactor(uuid.NewString(), t0)), apperr.ErrNotFound)
		wantErr(t, "padded user ID", s.CreateFactor(ctx, newFactor(alice.ID+" ", t0)), apperr.ErrNotFound)
		factors(t, alice.ID, f1, f2)
		factors(t, bob.ID, g1)
	})

	t.Run("CreatedAtDefault", func(t *testing.T) {
		u := newUser("carol")
		wantErr(t, "create carol", s.CreateUser(ctx, u), nil)
		f := newFactor(u.ID, time.Time{})
		before := time.Now().Add(-time.Minute)
		wantErr(t, "create", s.CreateFactor(ctx, f), nil)
		if f.CreatedAt.Before(before) || f.CreatedAt.After(time.Now().Add(time.Minute)) {
			t.Fatalf("CreatedAt set to %v, want about now", f.CreatedAt)
		}
		got, err := s.Factors(ctx, u.ID)
		wantErr(t, "factors", err, nil)
		if len(got) != 1 || got[0].CreatedAt.Sub(f.CreatedAt).Abs() > time.Millisecond {
			t.Fatalf("stored %+v, want CreatedAt %v", got, f.CreatedAt)
		}
	})

	confirm := func(t *testing.T, userID, factorID string, step int64, want bool) {
		t.Helper()
		ok, err := s.ConfirmFactor(ctx, userID, factorID, step, t0.Add(time.Hour))
		wantErr(t, "confirm", err, nil)
		if ok != want {
			t.Fatalf("ConfirmFactor(step %d) = %v, want %v", step, ok, want)
		}
	}
	use := func(t *testing.T, factorID string, step int64, want bool) {
		t.Helper()
		ok, err := s.UseTOTPStep(ctx, factorID, step)
		wantErr(t, "use step", err, nil)
		if ok != want {
			t.Fatalf("UseTOTPStep(step %d) = %v, want %v", step, ok, want)
		}
	}

	t.Run("Confirm", func(t *testing.T) {
		confirm(t, bob.ID, f1.ID, 100, false)       // not bob's
		confirm(t, alice.ID, f1.ID, 0, false)       // not after the last used step (0)
		confirm(t, alice.ID, f1.ID+" ", 100, false) // byte for byte
		confirm(t, alice.ID, g1.ID, 100, false)     // bob's factor, alice's ID
		confirm(t, alice.ID, f2.ID, 100, false)     // confirmed already
		factors(t, alice.ID, f1, f2)
		confirm(t, alice.ID, f1.ID, 100, true)
		confirm(t, alice.ID, f1.ID, 101, false) // once
		f1.ConfirmedAt, f1.LastUsedStep = t0.Add(time.Hour), 100
		factors(t, alice.ID, f1, f2)
		factors(t, bob.ID, g1)
	})

	t.Run("UseTOTPStep", func(t *testing.T) {
		use(t, f1.ID, 100, false) // the confirmation's step, replayed
		use(t, f1.ID, 99, false)  // earlier
		use(t, f1.ID, 102, true)
		use(t, f1.ID, 102, false)
		use(t, f1.ID, 101, false) // skipped steps cannot be used afterwards
		use(t, f1.ID+" ", 103, false)
		use(t, "no-such-factor", 1, false)
		use(t, f2.ID, 6, true) // factors are independent
		f1.LastUsedStep, f2.LastUsedStep = 102, 6
		factors(t, alice.ID, f1, f2)
		factors(t, bob.ID, g1)
	})

	// An unconfirmed factor takes no code at login: only ConfirmFactor
	// finishes its enrolment, and a refused UseTOTPStep writes nothing,
	// so the confirmation still takes an earlier step.
	t.Run("UseTOTPStepUnconfirmed", func(t *testing.T) {
		use(t, g1.ID, 50, false)
		use(t, g1.ID, 1, false)
		factors(t, bob.ID, g1)
		confirm(t, bob.ID, g1.ID, 40, true)
		use(t, g1.ID, 40, false)
		use(t, g1.ID, 41, true)
		g1.ConfirmedAt, g1.LastUsedStep = t0.Add(time.Hour), 41
		factors(t, bob.ID, g1)
	})

	t.Run("Delete", func(t *testing.T) {
		wantErr(t, "delete another's", s.DeleteFactor(ctx, bob.ID, f1.ID), apperr.ErrNotFound)
		wantErr(t, "delete padded", s.DeleteFactor(ctx, alice.ID, f1.ID+" "), apperr.ErrNotFound)
		wantErr(t, "delete", s.DeleteFactor(ctx, alice.ID, f1.ID), nil)
		wantErr(t, "delete again", s.DeleteFactor(ctx, alice.ID, f1.ID), apperr.ErrNotFound)
		factors(t, alice.ID, f2)
		factors(t, bob.ID, g1)
		use(t, f1.ID, 200, false)
	})
}

// testRecoveryCodes checks the recovery-code methods: replacement, single
// use, per-user codes, exact binary digests, and the errors (which write
// nothing).
func testRecoveryCodes(t *testing.T, open Open) {
	s, ctx, alice, bob := twoUsers(t, open)
	left := func(t *testing.T, userID string, want int) {
		t.Helper()
		n, err := s.RecoveryCodesLeft(ctx, userID)
		wantErr(t, "codes left", err, nil)
		if n != want {
			t.Fatalf("RecoveryCodesLeft = %d, want %d", n, want)
		}
	}
	use := func(t *testing.T, userID string, hash []byte, want bool) {
		t.Helper()
		ok, err := s.UseRecoveryCode(ctx, userID, hash)
		wantErr(t, "use code", err, nil)
		if ok != want {
			t.Fatalf("UseRecoveryCode(%x) = %v, want %v", hash, ok, want)
		}
	}
	// Digests that differ only in a trailing space or NUL byte, which a
	// padding collation would confuse.
	base := codeHash("base")
	spaceEnd := append(bytes.Clone(base[:31]), ' ')
	nulEnd := append(bytes.Clone(base[:31]), 0)
	h1, h2, h3 := codeHash("one"), codeHash("two"), codeHash("three")

	left(t, alice.ID, 0)
	wantErr(t, "replace", s.ReplaceRecoveryCodes(ctx, alice.ID, [][]byte{h1, h2, h3, spaceEnd, nulEnd}), nil)
	wantErr(t, "replace bob's", s.ReplaceRecoveryCodes(ctx, bob.ID, [][]byte{h1}), nil)
	left(t, alice.ID, 5)
	left(t, bob.ID, 1)
	left(t, alice.ID+" ", 0)

	use(t, alice.ID, h1, true)
	use(t, alice.ID, h1, false) // once
	left(t, bob.ID, 1)          // bob's equal code is his own
	use(t, bob.ID, h2, false)   // not bob's
	use(t, alice.ID, codeHash("unknown"), false)
	use(t, alice.ID, h2[:31], false)
	use(t, alice.ID+" ", h2, false)
	use(t, alice.ID, spaceEnd, true)
	use(t, alice.ID, nulEnd, true)
	use(t, alice.ID, spaceEnd[:31], false)
	left(t, alice.ID, 2)

	h4, h5 := codeHash("four"), codeHash("five")
	wantErr(t, "replace again", s.ReplaceRecoveryCodes(ctx, alice.ID, [][]byte{h4, h5}), nil)
	left(t, alice.ID, 2)
	use(t, alice.ID, h2, false) // replaced
	use(t, alice.ID, h4, true)
	left(t, alice.ID, 1)

	// Errors write nothing: h5 stays the one code left.
	wantErr(t, "unknown user", s.ReplaceRecoveryCodes(ctx, uuid.NewString(), [][]byte{h1}), apperr.ErrNotFound)
	wantErr(t, "duplicate", s.ReplaceRecoveryCodes(ctx, alice.ID, [][]byte{h1, h1}), apperr.ErrAlreadyExists)
	if err := s.ReplaceRecoveryCodes(ctx, alice.ID, [][]byte{h1, h2[:16]}); err == nil {
		t.Fatal("a 16-byte digest was accepted")
	}
	left(t, alice.ID, 1)
	use(t, alice.ID, h1, false)

	wantErr(t, "replace with none", s.ReplaceRecoveryCodes(ctx, alice.ID, nil), nil)
	left(t, alice.ID, 0)
	use(t, alice.ID, h5, false)
	left(t, bob.ID, 1)
}

// testDeleteUserDeletesFactors: deleting a user deletes their factors and
// recovery codes, and only theirs. The user is then created again with
// the same ID, which finds nothing of the old rows.
func testDeleteUserDeletesFactors(t *testing.T, open Open) {
	s, ctx, alice, bob := twoUsers(t, open)
	fa, fb := newFactor(alice.ID, t0), newFactor(bob.ID, t0)
	fa.ConfirmedAt = t0 // so that UseTOTPStep would take a step of it
	wantErr(t, "factor", s.CreateFactor(ctx, fa), nil)
	wantErr(t, "factor", s.CreateFactor(ctx, fb), nil)
	wantErr(t, "codes", s.ReplaceRecoveryCodes(ctx, alice.ID, [][]byte{codeHash("a")}), nil)
	wantErr(t, "codes", s.ReplaceRecoveryCodes(ctx, bob.ID, [][]byte{codeHash("b")}), nil)

	wantErr(t, "delete alice", s.DeleteUser(ctx, alice.ID), nil)
	wantErr(t, "delete alice again", s.DeleteUser(ctx, alice.ID), apperr.ErrNotFound)
	wantErr(t, "recreate alice", s.CreateUser(ctx, alice), nil)
	if got, err := s.Factors(ctx, alice.ID); err != nil || len(got) != 0 {
		t.Fatalf("factors after DeleteUser: %v, %v; want none", got, err)
	}
	if n, err := s.RecoveryCodesLeft(ctx, alice.ID); err != nil || n != 0 {
		t.Fatalf("codes after DeleteUser: %d, %v; want 0", n, err)
	}
	if ok, err := s.UseTOTPStep(ctx, fa.ID, 1); err != nil || ok {
		t.Fatalf("UseTOTPStep of a deleted user's factor = %v, %v; want false", ok, err)
	}
	got, err := s.Factors(ctx, bob.ID)
	wantErr(t, "bob's factors", err, nil)
	same(t, "bob's factors", got, []*identity.Factor{fb})
	if n, err := s.RecoveryCodesLeft(ctx, bob.ID); err != nil || n != 1 {
		t.Fatalf("bob's codes: %d, %v; want 1", n, err)
	}
}

// testResealFactorSecrets checks the listing of factor secrets not
// sealed under a secrets key (every user's, confirmed or not, in pages
// ordered by ID) and the conditional re-seal, which changes the sealed
// bytes and the wrap-key ID only while the old wrap-key ID is still
// stored, and nothing else of the factor.
func testResealFactorSecrets(t *testing.T, open Open) {
	s, ctx, alice, bob := twoUsers(t, open)
	const oldKey, newKey, otherKey = "sk-00000000000000aa", "sk-00000000000000bb", "sk-00000000000000cc"
	a1 := newFactor(alice.ID, t0) // unconfirmed
	a2 := newFactor(alice.ID, t0.Add(time.Second))
	a2.ConfirmedAt, a2.LastUsedStep = t0.Add(2*time.Second), 7
	b1 := newFactor(bob.ID, t0)
	b1.WrapKeyID = newKey // sealed under the new key already
	b2 := newFactor(bob.ID, t0.Add(time.Second))
	b2.WrapKeyID, b2.Sealed = otherKey, []byte{0, 1, 2, ' '}
	for _, f := range []*identity.Factor{a1, a2, b1, b2} {
		if f.WrapKeyID == "sk-0123456789abcdef" {
			f.WrapKeyID = oldKey
		}
		wantErr(t, "create factor", s.CreateFactor(ctx, f), nil)
	}
	secret := func(f *identity.Factor) totp.SealedSecret {
		return totp.SealedSecret{FactorID: f.ID, WrapKeyID: f.WrapKeyID, Sealed: f.Sealed}
	}
	byID := func(fs ...*identity.Factor) []totp.SealedSecret {
		out := []totp.SealedSecret{}
		for _, f := range fs {
			out = append(out, secret(f))
		}
		slices.SortFunc(out, func(x, y totp.SealedSecret) int { return strings.Compare(x.FactorID, y.FactorID) })
		return out
	}
	list := func(t *testing.T, notUnder, after string, limit int, want []totp.SealedSecret) {
		t.Helper()
		got, err := s.SealedFactorSecrets(ctx, notUnder, after, limit)
		wantErr(t, "sealed factor secrets", err, nil)
		same(t, fmt.Sprintf("SealedFactorSecrets(%s, %q, %d)", notUnder, after, limit), got, want)
	}
	reseal := func(t *testing.T, f *identity.Factor, oldWrapID string, sealed []byte, want bool) {
		t.Helper()
		ok, err := s.ResealFactorSecret(ctx, f.ID, oldWrapID, newKey, sealed)
		wantErr(t, "reseal", err, nil)
		if ok != want {
			t.Fatalf("ResealFactorSecret(%s under %s) = %v, want %v", f.ID, oldWrapID, ok, want)
		}
	}

	t.Run("List", func(t *testing.T) {
		all := byID(a1, a2, b2)
		list(t, newKey, "", 10, all)
		list(t, newKey, "", 3, all)
		list(t, newKey, "", 2, all[:2])
		list(t, newKey, all[1].FactorID, 2, all[2:])
		list(t, newKey, all[2].FactorID, 2, []totp.SealedSecret{})
		list(t, oldKey, "", 10, byID(b1, b2))
		list(t, "sk-unused", "", 10, byID(a1, a2, b1, b2))
	})

	t.Run("Reseal", func(t *testing.T) {
		sealedA1 := []byte("new\x00\xff sealed ")
		reseal(t, a1, otherKey, sealedA1, false)   // not sealed under otherKey
		reseal(t, a1, oldKey+" ", sealedA1, false) // byte for byte
		reseal(t, &identity.Factor{ID: a1.ID + " "}, oldKey, sealedA1, false)
		reseal(t, &identity.Factor{ID: uuid.NewString()}, oldKey, sealedA1, false)
		got, err := s.Factors(ctx, alice.ID)
		wantErr(t, "factors", err, nil)
		same(t, "alice's factors after refused re-seals", got, []*identity.Factor{a1, a2})

		reseal(t, a1, oldKey, sealedA1, true)
		reseal(t, a1, oldKey, []byte("again"), false) // once
		reseal(t, a2, oldKey, []byte("a2"), true)
		a1.Sealed, a1.WrapKeyID = sealedA1, newKey
		a2.Sealed, a2.WrapKeyID = []byte("a2"), newKey
		got, err = s.Factors(ctx, alice.ID)
		wantErr(t, "factors", err, nil)
		same(t, "alice's factors after re-sealing", got, []*identity.Factor{a1, a2})
		got, err = s.Factors(ctx, bob.ID)
		wantErr(t, "factors", err, nil)
		same(t, "bob's factors", got, []*identity.Factor{b1, b2})
		list(t, newKey, "", 10, byID(b2))

		wantErr(t, "delete", s.DeleteFactor(ctx, bob.ID, b2.ID), nil)
		reseal(t, b2, otherKey, []byte("gone"), false) // deleted meanwhile
		list(t, newKey, "", 10, []totp.SealedSecret{})
	})
}

// testTOTPStepRace uses one TOTP step of one factor from many goroutines
// at once: exactly one call succeeds.
func testTOTPStepRace(t *testing.T, open Open) {
	checkTOTPStepRace(t, []Store{open(t)}, 20)
}

// testReplicaTOTPStepRace is testTOTPStepRace spread over every replica.
func testReplicaTOTPStepRace(t *testing.T, open OpenReplicas) {
	checkTOTPStepRace(t, open(t), 12)
}

// testRecoveryCodeRace uses one recovery code from many goroutines at
// once: exactly one call succeeds.
func testRecoveryCodeRace(t *testing.T, open Open) {
	checkRecoveryCodeRace(t, []Store{open(t)}, 20)
}

// testReplicaRecoveryCodeRace is testRecoveryCodeRace spread over every
// replica.
func testReplicaRecoveryCodeRace(t *testing.T, open OpenReplicas) {
	checkRecoveryCodeRace(t, open(t), 12)
}

// checkTOTPStepRace races n UseTOTPStep calls with one step over rs, in
// five rounds of rising steps: exactly one reports true, none errs; every
// replica then refuses the step and the one before it.
func checkTOTPStepRace(t *testing.T, rs []Store, n int) {
	t.Helper()
	ctx := ctxTimeout(t)
	u := newUser("racer")
	wantErr(t, "create user", rs[0].CreateUser(ctx, u), nil)
	f := newFactor(u.ID, t0)
	f.ConfirmedAt = t0 // only a confirmed factor takes codes at login
	wantErr(t, "create factor", rs[0].CreateFactor(ctx, f), nil)
	for round := range 5 {
		step := int64(1000 + 10*round)
		checkOnce(t, rs, n, fmt.Sprintf("round %d: UseTOTPStep", round), func(s Store) (bool, error) {
			return s.UseTOTPStep(ctx, f.ID, step)
		})
		for ri, s := range rs {
			for _, again := range []int64{step, step - 1} {
				if ok, err := s.UseTOTPStep(ctx, f.ID, again); err != nil || ok {
					t.Fatalf("round %d: replica %d: UseTOTPStep(%d) after the race = %v, %v; want false", round, ri, again, ok, err)
				}
			}
		}
	}
}

// checkRecoveryCodeRace races n UseRecoveryCode calls of one code over
// rs, for five codes: exactly one reports true, none errs; every replica
// then counts the code used.
func checkRecoveryCodeRace(t *testing.T, rs []Store, n int) {
	t.Helper()
	ctx := ctxTimeout(t)
	u := newUser("racer")
	wantErr(t, "create user", rs[0].CreateUser(ctx, u), nil)
	var hashes [][]byte
	for i := range 5 {
		hashes = append(hashes, codeHash(fmt.Sprintf("race-%d", i)))
	}
	wantErr(t, "replace codes", rs[0].ReplaceRecoveryCodes(ctx, u.ID, hashes), nil)
	for round, h := range hashes {
		checkOnce(t, rs, n, fmt.Sprintf("round %d: UseRecoveryCode", round), func(s Store) (bool, error) {
			return s.UseRecoveryCode(ctx, u.ID, h)
		})
		for ri, s := range rs {
			if n, err := s.RecoveryCodesLeft(ctx, u.ID); err != nil || n != len(hashes)-round-1 {
				t.Fatalf("round %d: replica %d: %d codes left, %v; want %d", round, ri, n, err, len(hashes)-round-1)
			}
		}
	}
}

// checkOnce runs n calls of fn at once over rs (race) and fails t unless
// exactly one reports true and none errs.
func checkOnce(t *testing.T, rs []Store, n int, what string, fn func(s Store) (bool, error)) {
	t.Helper()
	won := make([]bool, n)
	errs := race(rs, n, func(i int, s Store) error {
		var err error
		won[i], err = fn(s)
		return err
	})
	wins := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: call %d: %v", what, i, err)
		}
		if won[i] {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%s: %d of %d concurrent calls succeeded, want exactly 1", what, wins, n)
	}
}
