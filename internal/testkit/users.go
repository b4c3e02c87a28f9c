package testkit

import (
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/storage"
)

// Password is a password every default policy accepts.
const Password = "purple otter lamp 42"

// CheapArgon2 returns argon2id parameters that cost microseconds, for
// tests where the hashing cost is not under test.
func CheapArgon2() identity.Argon2Params {
	return identity.Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// Users returns an identity.Service on store with a cheap hasher, the
// default password policy, sessions and throttles kept in store, and the
// given lockout policy.
func Users(store *storage.Store, lockout identity.LockoutPolicy) *identity.Service {
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

// Clock is a settable time source, safe for concurrent use. Its zero
// value reads 2030-01-02 03:04:05 UTC.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time; pass the method value as a Now func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
