package oauth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/identitytest"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// Red-team review of the password grant's credential confirmation
// (ef7248e): logins that upgrade the password hash (argon2 parameters
// changed since the hash was written) and role changes racing a login.

// upgradedArgon2 differs from identitytest.CheapArgon2, so that every hash
// written with the cheap parameters is upgraded on its next login.
func upgradedArgon2() identity.Argon2Params {
	p := identitytest.CheapArgon2()
	p.Iterations = 2
	return p
}

// TestPasswordChangeDuringRehashingLoginEndsTheGrant is
// TestPasswordChangeDuringLoginEndsTheGrant for a login whose hash is
// upgraded (the argon2 parameters changed between server restarts, so
// the first login after the restart rehashes). The login checked the old
// password against the old hash, the owner's password change committed,
// and then the login wrote the upgraded hash of the OLD password over the
// new one. confirmCredentials compares with that upgraded hash and lets
// the login through: the attacker's grant outlives the change, and the
// change itself is undone (the new password no longer works, the old one
// does).
func TestPasswordChangeDuringRehashingLoginEndsTheGrant(t *testing.T) {
	for name, dsn := range raceBackends {
		t.Run(name, func(t *testing.T) {
			// A restart with new parameters: the login rehashes.
			loginRacingPasswordChange(t, dsn(t), identity.NewPasswordHasher(upgradedArgon2()))
		})
	}
}

// TestDeletionDuringRehashingLoginIsInvalidGrant: a login whose hash is
// upgraded while the account is deleted is refused like any login of a
// deleted account (invalid_grant), not with 500 server_error (the
// upgrade's UpdateUser found no row and its error went out as is).
func TestDeletionDuringRehashingLoginIsInvalidGrant(t *testing.T) {
	for name, dsn := range raceBackends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, servertest.Options{DSN: dsn(t)})
			u := e.user(t, "victim")
			c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
			conf := e.conf(c, "", oauth2.AuthStyleInParams)
			e.Users.Hasher = identity.NewPasswordHasher(upgradedArgon2())
			owner := &identity.Service{Store: e.Store, Hasher: e.Users.Hasher, Sessions: e.Store, Throttles: e.Store}
			hooked := &lookupHook{Store: e.Store}
			hooked.hook = func() {
				if err := owner.Delete(t.Context(), u.ID); err != nil {
					t.Errorf("delete: %v", err)
				}
			}
			e.Users.Store = hooked
			_, err := conf.PasswordCredentialsToken(t.Context(), "victim", identitytest.Password)
			if hooked.hook != nil {
				t.Fatal("the hook did not run")
			}
			if err == nil {
				t.Fatal("a login of a deleted account succeeded")
			}
			if code := rfcCode(t, err); code != "invalid_grant" {
				t.Errorf("a login racing the account's deletion failed with %s, want invalid_grant", code)
			}
		})
	}
}

// rehashHook is an identity.Store on which two logins both read the user
// (with its old-parameter hash) before either upgrades it, and whose
// upgrades are ordered: the first writes, then the second, and only then
// does the first return (and go on to confirmCredentials).
type rehashHook struct {
	identity.Store
	mu             sync.Mutex
	reads, updates int
	bothRead       chan struct{}
	firstWrote     chan struct{}
	secondWrote    chan struct{}
	timeout        time.Duration
	t              *testing.T
}

func (s *rehashHook) wait(ch chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(s.timeout):
		s.t.Errorf("timed out waiting until %s", what)
	}
}

func (s *rehashHook) GetUserByUsername(ctx context.Context, username string) (*identity.User, error) {
	u, err := s.Store.GetUserByUsername(ctx, username)
	s.mu.Lock()
	s.reads++
	if s.reads == 2 {
		close(s.bothRead)
	}
	s.mu.Unlock()
	s.wait(s.bothRead, "both logins read the user")
	return u, err
}

func (s *rehashHook) UpdateUser(ctx context.Context, id string, update func(*identity.User) error) (*identity.User, error) {
	s.mu.Lock()
	s.updates++
	n := s.updates
	s.mu.Unlock()
	switch n {
	case 1:
		u, err := s.Store.UpdateUser(ctx, id, update)
		close(s.firstWrote)
		s.wait(s.secondWrote, "the second login upgraded the hash")
		return u, err
	case 2:
		s.wait(s.firstWrote, "the first login upgraded the hash")
		u, err := s.Store.UpdateUser(ctx, id, update)
		close(s.secondWrote)
		return u, err
	}
	return s.Store.UpdateUser(ctx, id, update)
}

// TestConcurrentRehashingLoginsBothSucceed: two logins with the right
// password right after the argon2 parameters changed both upgrade the
// hash; the one that upgraded first finds, in confirmCredentials, the
// other's upgrade and is refused with invalid_grant although its password
// was right and nothing changed the account. (Before ef7248e both
// succeeded.)
func TestConcurrentRehashingLoginsBothSucceed(t *testing.T) {
	for name, dsn := range raceBackends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, servertest.Options{DSN: dsn(t)})
			e.Users.MaxConcurrentHashes = 4 // both logins hold a slot while they read
			e.user(t, "victim")
			c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
			conf := e.conf(c, "", oauth2.AuthStyleInParams)
			e.Users.Hasher = identity.NewPasswordHasher(upgradedArgon2())
			e.Users.Store = &rehashHook{Store: e.Store, bothRead: make(chan struct{}),
				firstWrote: make(chan struct{}), secondWrote: make(chan struct{}), timeout: 10 * time.Second, t: t}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Go(func() {
					_, errs[i] = conf.PasswordCredentialsToken(context.Background(), "victim", identitytest.Password)
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("login %d with the right password: %v", i, err)
				}
			}
		})
	}
}
