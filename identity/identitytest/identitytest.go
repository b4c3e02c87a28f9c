// Package identitytest holds what tests of any package need to create
// users cheaply: argon2id parameters that cost microseconds, a password the
// default policy accepts, and an identity.Service wired to a store. It is
// for tests only.
package identitytest

import (
	"testing"

	"github.com/portcullis-auth/portcullis/identity"
)

// Password is a password the default policy accepts.
const Password = "purple otter lamp 42"

// CheapArgon2 returns argon2id parameters that cost microseconds, for
// tests where the hashing cost is not under test.
func CheapArgon2() identity.Argon2Params {
	return identity.Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// Store is what a Service keeps in one database: users, their grants'
// revocation and the guessing counters (storage.Store is one).
type Store interface {
	identity.Store
	identity.SessionRevoker
	identity.ThrottleStore
}

// NewService returns an identity.Service on store with a cheap hasher,
// the default password policy and the given lockout policy.
func NewService(store Store, lockout identity.LockoutPolicy) *identity.Service {
	return &identity.Service{
		Store: store, Sessions: store, Throttles: store,
		Hasher:  identity.NewPasswordHasher(CheapArgon2()),
		Policy:  identity.DefaultPasswordPolicy(),
		Lockout: lockout,
	}
}

// CreateUser signs up username with Password and the given roles, failing
// the test on error.
func CreateUser(t testing.TB, users *identity.Service, username string, roles ...string) *identity.User {
	t.Helper()
	u, err := users.Signup(t.Context(), username, Password, roles)
	if err != nil {
		t.Fatalf("sign up %q: %v", username, err)
	}
	return u
}
