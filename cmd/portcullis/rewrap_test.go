package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/totp"
	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/internal/seal"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// TestRewrapTOTPSecrets rotates the secrets key from A to B with the real
// binary, on SQLite and MariaDB: `keys rewrap` (B, with A as the old key)
// re-seals the signing keys and the TOTP secret of every factor,
// confirmed or not, under B, so that once A is dropped every secret still
// opens, under B alone, to what it was. Before, rewrap re-sealed only the
// signing keys, and dropping A cut every user off their second factor.
func TestRewrapTOTPSecrets(t *testing.T) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return storagetest.SQLiteDSN(t) },
		"mysql":  func(t *testing.T) string { return storagetest.MySQLDSN(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRewrapTOTPSecrets(t, dsn(t))
		})
	}
}

func testRewrapTOTPSecrets(t *testing.T, dsn string) {
	keyA, keyB := proctest.RandomSecretsKey(t), proctest.RandomSecretsKey(t)
	sealerOf := func(keys ...string) *seal.Sealer {
		t.Helper()
		var raw [][]byte
		for _, k := range keys {
			b, err := base64.StdEncoding.DecodeString(k)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b)
		}
		s, err := seal.New(raw[0], raw[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	onlyA, onlyB := sealerOf(keyA), sealerOf(keyB)
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORTCULLIS_DSN=" + dsn,
		"PORTCULLIS_ARGON2_MEMORY_KIB=64", "PORTCULLIS_ARGON2_ITERATIONS=1"}
	withA := append([]string{"PORTCULLIS_SECRETS_KEY=" + keyA}, base...)
	withB := append([]string{"PORTCULLIS_SECRETS_KEY=" + keyB}, base...)
	rotating := append([]string{"PORTCULLIS_SECRETS_KEY=" + keyB, "PORTCULLIS_SECRETS_KEY_OLD=" + keyA}, base...)

	runCLI(t, withA, "", "migrate")
	runCLI(t, withA, "", "keys", "rotate") // signing keys sealed under A too
	runCLI(t, withA, "quiet violet harbor 1907\n", "users", "create", "--username", "alice", "--password-stdin")
	runCLI(t, withA, "quiet violet harbor 1907\n", "users", "create", "--username", "bob", "--password-stdin")
	userID := func(name string) string {
		var u struct{ ID string }
		if err := json.Unmarshal(runCLI(t, withA, "", "users", "get", name, "--output", "json"), &u); err != nil || u.ID == "" {
			t.Fatalf("users get %s: %+v, %v", name, u, err)
		}
		return u.ID
	}

	// Two factors sealed under A: alice's confirmed, bob's enrolment
	// unfinished.
	secrets := map[string]string{}
	var created []*identity.Factor
	withStore(t, dsn, func(s *storage.Store) {
		for i, owner := range []string{"alice", "bob"} {
			key, err := totp.Generate("Portcullis", owner)
			if err != nil {
				t.Fatal(err)
			}
			f := &identity.Factor{ID: uuid.NewString(), UserID: userID(owner), Kind: identity.FactorTOTP}
			if f.WrapKeyID, f.Sealed, err = totp.SealSecret(onlyA, f.ID, key.Secret()); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				f.ConfirmedAt, f.LastUsedStep = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC), 42
			}
			if err := s.CreateFactor(t.Context(), f); err != nil {
				t.Fatal(err)
			}
			secrets[f.ID] = key.Secret()
			created = append(created, f)
		}
	})

	var out struct {
		Rewrapped        *int   `json:"rewrapped"`
		FactorsRewrapped *int   `json:"factors_rewrapped"`
		FactorsSkipped   *int   `json:"factors_skipped"`
		WrapKeyID        string `json:"wrap_key_id"`
	}
	rewrap := func() {
		t.Helper()
		out.Rewrapped, out.FactorsRewrapped, out.FactorsSkipped = nil, nil, nil
		if err := json.Unmarshal(runCLI(t, rotating, "", "keys", "rewrap", "--output", "json"), &out); err != nil {
			t.Fatal(err)
		}
		if out.Rewrapped == nil || out.FactorsRewrapped == nil || out.FactorsSkipped == nil || out.WrapKeyID != onlyB.PrimaryID() {
			t.Fatalf("rewrap output %+v lacks a count or names another key than %s", out, onlyB.PrimaryID())
		}
	}
	rewrap()
	if *out.Rewrapped != 2 || *out.FactorsRewrapped != 2 || *out.FactorsSkipped != 0 {
		t.Fatalf("rewrap: %d keys, %d TOTP secrets re-sealed, %d skipped; want 2, 2, 0", *out.Rewrapped, *out.FactorsRewrapped, *out.FactorsSkipped)
	}
	if text := string(runCLI(t, rotating, "", "keys", "rewrap")); !strings.Contains(text, "0 key(s) and 0 TOTP secret(s)") {
		t.Errorf("second rewrap printed %q, want nothing re-sealed", text)
	}

	// A is dropped: the servers run with B alone. Every secret opens under
	// B to what it was, and no longer under A; nothing else changed.
	runCLI(t, withB, "", "keys", "rotate")
	withStore(t, dsn, func(s *storage.Store) {
		for i, owner := range []string{"alice", "bob"} {
			want := created[i]
			got, err := s.Factors(t.Context(), want.UserID)
			if err != nil || len(got) != 1 {
				t.Fatalf("%s's factors: %+v, %v", owner, got, err)
			}
			f := got[0]
			if f.ID != want.ID || f.WrapKeyID != onlyB.PrimaryID() || f.WrapKeyID == want.WrapKeyID ||
				f.Confirmed() != want.Confirmed() || f.LastUsedStep != want.LastUsedStep {
				t.Errorf("%s's factor after rewrap %+v, want %+v re-sealed under %s", owner, f, want, onlyB.PrimaryID())
			}
			secret, err := totp.OpenSecret(onlyB, f.ID, f.WrapKeyID, f.Sealed)
			if err != nil || secret != secrets[f.ID] {
				t.Errorf("%s's secret under B alone: %q, %v; want the enrolled one", owner, secret, err)
			}
			if _, err := totp.OpenSecret(onlyA, f.ID, f.WrapKeyID, f.Sealed); !errors.Is(err, seal.ErrWrongKey) {
				t.Errorf("%s's secret still opens under A: %v", owner, err)
			}
			if bytes.Equal(f.Sealed, want.Sealed) {
				t.Errorf("%s's sealed secret unchanged", owner)
			}
		}
	})
}

// runCLI runs the real portcullis binary with env (nothing inherited),
// stdin and args and returns its stdout; it fails the test, showing
// stderr, on a non-zero exit.
func runCLI(t *testing.T, env []string, stdin string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), string(portcullis), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("portcullis %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// withStore opens the migrated database dsn, calls fn and closes it.
func withStore(t *testing.T, dsn string, fn func(s *storage.Store)) {
	t.Helper()
	s, err := storage.Open(t.Context(), dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	fn(s)
}
