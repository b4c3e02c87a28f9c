package identity_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/identitytest"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

const goodPassword = identitytest.Password

// testIP is the client address of logins in tests.
const testIP = "192.0.2.1"

// cheapParams keeps argon2id fast where hashing cost is not under test.
func cheapParams() identity.Argon2Params { return identitytest.CheapArgon2() }

// clock is the settable test clock.
type clock = testkit.Clock

func newClock() *clock { return testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

// newService returns a Service on a fresh SQLite store with a cheap hasher,
// the default password policy and the given lockout policy.
func newService(t *testing.T, lockout identity.LockoutPolicy) (*identity.Service, *storage.Store, *clock) {
	t.Helper()
	store := storagetest.OpenSQLite(t)
	c := newClock()
	return &identity.Service{
		Store:     store,
		Hasher:    identity.NewPasswordHasher(cheapParams()),
		Policy:    identity.DefaultPasswordPolicy(),
		Lockout:   lockout,
		Throttles: store,
		Now:       c.Now,
	}, store, c
}

func signup(t *testing.T, s *identity.Service, username string, roles ...string) *identity.User {
	t.Helper()
	u, err := s.Signup(t.Context(), username, goodPassword, roles)
	if err != nil {
		t.Fatalf("Signup(%q): %v", username, err)
	}
	return u
}

func getUser(t *testing.T, store *storage.Store, id string) *identity.User {
	t.Helper()
	u, err := store.GetUser(t.Context(), id)
	if err != nil {
		t.Fatalf("GetUser(%s): %v", id, err)
	}
	return u
}

func TestSignup(t *testing.T) {
	tests := []struct {
		name      string
		username  string
		password  string
		roles     []string
		wantField string   // PolicyError.Field; "" means success
		wantProbs []string // substrings of the problems
		wantRoles []string
	}{
		{name: "valid", username: "Alice", password: goodPassword, wantRoles: []string{}},
		{name: "email username", username: "alice@example.com", password: goodPassword, wantRoles: []string{}},
		{name: "roles sorted and deduplicated", username: "bob", password: goodPassword, roles: []string{"user", "admin", "user", "ops:read"}, wantRoles: []string{"admin", "ops:read", "user"}},
		{name: "username too short", username: "ab", password: goodPassword, wantField: "username", wantProbs: []string{"3 to 64"}},
		{name: "username too long", username: strings.Repeat("a", 65), password: goodPassword, wantField: "username", wantProbs: []string{"3 to 64"}},
		{name: "username with space", username: "bad name", password: goodPassword, wantField: "username", wantProbs: []string{"only ASCII"}},
		{name: "username non-ASCII", username: "jürgen", password: goodPassword, wantField: "username", wantProbs: []string{"only ASCII"}},
		{name: "username starts with dot", username: ".alice", password: goodPassword, wantField: "username", wantProbs: []string{"start with a letter or digit"}},
		{name: "empty username", username: "", password: goodPassword, wantField: "username"},
		{name: "password too short", username: "carol", password: "short pass", wantField: "password", wantProbs: []string{"at least 12"}},
		{name: "password too long", username: "carol", password: strings.Repeat("x", 129), wantField: "password", wantProbs: []string{"at most 128"}},
		{name: "password equals username", username: "longusername12", password: "LongUsername12", wantField: "password", wantProbs: []string{"must not be the username"}},
		{name: "password contains username", username: "carol", password: "xx-CAROL-rocks-42", wantField: "password", wantProbs: []string{"must not contain the username"}},
		{name: "common password", username: "carol", password: "111111111111", wantField: "password", wantProbs: []string{"too common"}},
		{name: "several problems", username: "carol", password: "carol", wantField: "password", wantProbs: []string{"at least 12", "must not be the username"}},
		{name: "empty password", username: "carol", password: "", wantField: "password", wantProbs: []string{"at least 12"}},
		{name: "invalid role", username: "dave", password: goodPassword, roles: []string{"admin", "has space"}, wantField: "roles", wantProbs: []string{"has space"}},
		{name: "empty role", username: "dave", password: goodPassword, roles: []string{""}, wantField: "roles"},
		{name: "role starting with dash", username: "dave", password: goodPassword, roles: []string{"-x"}, wantField: "roles"},
		{name: "role too long", username: "dave", password: goodPassword, roles: []string{strings.Repeat("r", 65)}, wantField: "roles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, store, clk := newService(t, identity.LockoutPolicy{})
			u, err := s.Signup(t.Context(), tc.username, tc.password, tc.roles)
			if tc.wantField != "" {
				pe, ok := errors.AsType[*identity.PolicyError](err)
				if !ok {
					t.Fatalf("Signup error %v (%T), want *PolicyError", err, err)
				}
				if pe.Field != tc.wantField {
					t.Errorf("Field %q, want %q", pe.Field, tc.wantField)
				}
				msg := strings.Join(pe.Problems, "; ")
				for _, want := range tc.wantProbs {
					if !strings.Contains(msg, want) {
						t.Errorf("problems %q lack %q", msg, want)
					}
				}
				if us, err := store.ListUsers(t.Context()); err != nil || len(us) != 0 {
					t.Errorf("rejected signup stored users: %v %v", us, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Signup: %v", err)
			}
			if u.ID == "" || u.Username != tc.username || !slices.Equal(u.Roles, tc.wantRoles) {
				t.Errorf("user %+v", u)
			}
			if !u.CreatedAt.Equal(clk.Now()) || !u.UpdatedAt.Equal(clk.Now()) {
				t.Errorf("CreatedAt %v UpdatedAt %v, want the Now hook %v", u.CreatedAt, u.UpdatedAt, clk.Now())
			}
			stored := getUser(t, store, u.ID)
			if diff := cmp.Diff(u, stored); diff != "" {
				t.Errorf("stored user differs from Signup's (-returned +stored):\n%s", diff)
			}
			if strings.Contains(stored.PasswordHash, tc.password) {
				t.Fatal("stored hash contains the password")
			}
			if p, _, _, err := identity.ParsePHC(stored.PasswordHash); err != nil || p != cheapParams() {
				t.Errorf("stored hash params %+v, %v; want %+v", p, err, cheapParams())
			}
			if _, err := s.Authenticate(t.Context(), tc.username, tc.password, testIP); err != nil {
				t.Errorf("Authenticate after signup: %v", err)
			}
		})
	}
}

func TestSignupDuplicate(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	first := signup(t, s, "Alice")
	for _, name := range []string{"Alice", "alice", "ALICE", "aLiCe"} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Signup(t.Context(), name, "another fine password", nil)
			if !errors.Is(err, apperr.ErrAlreadyExists) {
				t.Fatalf("Signup(%q) = %v, want an error matching apperr.ErrAlreadyExists", name, err)
			}
			if apperr.CodeOf(err) != apperr.EConflict || !strings.Contains(apperr.MessageOf(err), "taken") {
				t.Errorf("code %s message %q", apperr.CodeOf(err), apperr.MessageOf(err))
			}
		})
	}
	us, err := store.ListUsers(t.Context())
	if err != nil || len(us) != 1 || us[0].ID != first.ID {
		t.Fatalf("users after duplicates: %v %v", us, err)
	}
	// The original password is untouched.
	if _, err := s.Authenticate(t.Context(), "alice", goodPassword, testIP); err != nil {
		t.Errorf("Authenticate original: %v", err)
	}
}

func TestSignupNewIDHook(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	n := 0
	s.NewID = func() string { n++; return fmt.Sprintf("user-%d", n) }
	u := signup(t, s, "alice")
	if u.ID != "user-1" {
		t.Errorf("ID %q, want user-1 from the NewID hook", u.ID)
	}
	getUser(t, store, "user-1")
	// A colliding ID is a conflict, not a silent overwrite.
	n = 0
	if _, err := s.Signup(t.Context(), "bob", goodPassword, nil); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Errorf("Signup with a taken ID = %v, want a conflict", err)
	}
}

func TestAuthenticateInvalidCredentials(t *testing.T) {
	s, _, _ := newService(t, identity.LockoutPolicy{MaxFailures: 100, Window: time.Hour, Duration: time.Hour})
	alice := signup(t, s, "Alice", "admin")
	disabled := signup(t, s, "dora")
	if _, err := s.Update(t.Context(), disabled.ID, identity.Change{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}

	u, err := s.Authenticate(t.Context(), "alice", goodPassword, testIP)
	if err != nil {
		t.Fatalf("Authenticate ok: %v", err)
	}
	if u.ID != alice.ID || u.Username != "Alice" || !slices.Equal(u.Roles, []string{"admin"}) {
		t.Errorf("authenticated %+v", u)
	}

	tests := []struct {
		name, username, password string
	}{
		{"wrong password", "alice", goodPassword + "x"},
		{"password in other case", "alice", strings.ToUpper(goodPassword)},
		{"empty password", "alice", ""},
		{"unknown user", "mallory", goodPassword},
		{"empty username", "", goodPassword},
		{"disabled user, right password", "dora", goodPassword},
		{"disabled user, wrong password", "dora", "nope nope nope"},
		{"overlong username", strings.Repeat("a", 257), goodPassword},
		{"overlong password", "alice", strings.Repeat("p", 4097)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := s.Authenticate(t.Context(), tc.username, tc.password, testIP)
			if u != nil {
				t.Errorf("returned user %+v on failure", u)
			}
			if !errors.Is(err, identity.ErrInvalidCredentials) {
				t.Fatalf("error %v, want ErrInvalidCredentials", err)
			}
			// Same error, same message: nothing tells the cases apart.
			if err.Error() != identity.ErrInvalidCredentials.Error() || apperr.CodeOf(err) != apperr.EUnauthorized {
				t.Errorf("error %q (code %s), want exactly %q", err, apperr.CodeOf(err), identity.ErrInvalidCredentials)
			}
		})
	}
}

func TestAuthenticateRehash(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	u := signup(t, s, "alice")
	before := getUser(t, store, u.ID).PasswordHash

	stronger := identity.Argon2Params{MemoryKiB: 128, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	s2 := &identity.Service{Store: store, Hasher: identity.NewPasswordHasher(stronger), Policy: identity.DefaultPasswordPolicy()}

	// A wrong password does not rehash.
	if _, err := s2.Authenticate(t.Context(), "alice", "wrong password 123", testIP); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if got := getUser(t, store, u.ID).PasswordHash; got != before {
		t.Error("a failed login changed the stored hash")
	}

	if _, err := s2.Authenticate(t.Context(), "alice", goodPassword, testIP); err != nil {
		t.Fatalf("Authenticate with new params: %v", err)
	}
	after := getUser(t, store, u.ID).PasswordHash
	p, _, _, err := identity.ParsePHC(after)
	if err != nil {
		t.Fatal(err)
	}
	if p != stronger {
		t.Errorf("stored params after login %+v, want %+v", p, stronger)
	}
	// Logging in again with unchanged params keeps the upgraded hash.
	if _, err := s2.Authenticate(t.Context(), "alice", goodPassword, testIP); err != nil {
		t.Fatalf("Authenticate after rehash: %v", err)
	}
	if getUser(t, store, u.ID).PasswordHash != after {
		t.Error("hash rewritten although the params did not change")
	}
}

func TestGet(t *testing.T) {
	s, _, _ := newService(t, identity.LockoutPolicy{})
	alice := signup(t, s, "Alice")
	bob := signup(t, s, "bob")
	tests := []struct {
		key          string
		byID, byName string // the ID Get and GetByUsername find; "" means not found
	}{
		{alice.ID, alice.ID, ""},
		{"Alice", "", alice.ID},
		{"alice", "", alice.ID},
		{"ALICE", "", alice.ID},
		{bob.ID, bob.ID, ""},
		{"bob", "", bob.ID},
		{"carol", "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			for name, get := range map[string]struct {
				fn   func(context.Context, string) (*identity.User, error)
				want string
			}{"Get": {s.Get, tc.byID}, "GetByUsername": {s.GetByUsername, tc.byName}} {
				u, err := get.fn(t.Context(), tc.key)
				if get.want == "" {
					if !errors.Is(err, apperr.ErrNotFound) || apperr.MessageOf(err) != "user not found" {
						t.Errorf("%s(%q) = %v, %v; want a not-found error", name, tc.key, u, err)
					}
					continue
				}
				if err != nil || u.ID != get.want {
					t.Errorf("%s(%q) = %v, %v; want %s", name, tc.key, u, err, get.want)
				}
			}
		})
	}
	us, err := s.List(t.Context())
	if err != nil || len(us) != 2 || us[0].Username != "Alice" || us[1].Username != "bob" {
		t.Errorf("List = %v, %v", us, err)
	}
}

func TestUpdate(t *testing.T) {
	s, store, clk := newService(t, identity.LockoutPolicy{MaxFailures: 2, Window: time.Hour, Duration: time.Hour})
	alice := signup(t, s, "Alice", "user")

	tests := []struct {
		name    string
		key     string
		change  identity.Change
		wantErr error // matched with errors.Is; nil means success
		check   func(t *testing.T, u *identity.User)
	}{
		{name: "roles by id", key: alice.ID, change: identity.Change{Roles: ptr([]string{"ops", "admin", "ops"})},
			check: func(t *testing.T, u *identity.User) {
				if !slices.Equal(u.Roles, []string{"admin", "ops"}) {
					t.Errorf("roles %v", u.Roles)
				}
			}},
		{name: "clear roles", key: alice.ID, change: identity.Change{Roles: ptr([]string{})},
			check: func(t *testing.T, u *identity.User) {
				if len(u.Roles) != 0 {
					t.Errorf("roles %v, want none", u.Roles)
				}
			}},
		{name: "invalid role", key: alice.ID, change: identity.Change{Roles: ptr([]string{"no spaces"})}, wantErr: &identity.PolicyError{}},
		{name: "disable", key: alice.ID, change: identity.Change{Disabled: ptr(true)},
			check: func(t *testing.T, u *identity.User) {
				if !u.Disabled {
					t.Error("not disabled")
				}
				if _, err := s.Authenticate(t.Context(), "alice", goodPassword, testIP); !errors.Is(err, identity.ErrInvalidCredentials) {
					t.Errorf("disabled user authenticates: %v", err)
				}
			}},
		{name: "enable", key: alice.ID, change: identity.Change{Disabled: ptr(false)},
			check: func(t *testing.T, u *identity.User) {
				if u.Disabled {
					t.Error("still disabled")
				}
				if _, err := s.Authenticate(t.Context(), "alice", goodPassword, testIP); err != nil {
					t.Errorf("enabled user: %v", err)
				}
			}},
		{name: "password against policy", key: alice.ID, change: identity.Change{Password: ptr("alice")}, wantErr: &identity.PolicyError{}},
		{name: "password equal to username", key: alice.ID, change: identity.Change{Password: ptr("ALICE")}, wantErr: &identity.PolicyError{}},
		{name: "unknown user", key: "nobody", change: identity.Change{Disabled: ptr(true)}, wantErr: apperr.ErrNotFound},
		{name: "username is not an ID", key: "alice", change: identity.Change{Disabled: ptr(true)}, wantErr: apperr.ErrNotFound},
		{name: "nothing", key: alice.ID, change: identity.Change{},
			check: func(t *testing.T, u *identity.User) {
				if !u.UpdatedAt.Equal(clk.Now()) || u.Disabled || len(u.Roles) != 0 {
					t.Errorf("empty change: %+v", u)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := getUser(t, store, alice.ID)
			clk.Advance(time.Minute)
			u, err := s.Update(t.Context(), tc.key, tc.change)
			if tc.wantErr != nil {
				if pe, ok := tc.wantErr.(*identity.PolicyError); ok && pe != nil {
					if _, ok := errors.AsType[*identity.PolicyError](err); !ok {
						t.Fatalf("Update = %v, want a *PolicyError", err)
					}
				} else if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Update = %v, want %v", err, tc.wantErr)
				}
				if diff := cmp.Diff(before, getUser(t, store, alice.ID)); diff != "" {
					t.Errorf("failed update wrote (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if u.ID != alice.ID || !u.UpdatedAt.Equal(clk.Now()) {
				t.Errorf("updated %+v, want UpdatedAt %v", u, clk.Now())
			}
			if diff := cmp.Diff(u, getUser(t, store, alice.ID)); diff != "" {
				t.Errorf("stored user differs from Update's (-returned +stored):\n%s", diff)
			}
			tc.check(t, u)
		})
	}

	t.Run("password change unlocks and replaces the password", func(t *testing.T) {
		for range 2 {
			_, _ = s.Authenticate(t.Context(), "alice", "wrong password 123", testIP)
		}
		if _, err := s.Authenticate(t.Context(), "alice", "wrong password 123", testIP); !errors.Is(err, identity.ErrThrottled) {
			t.Fatalf("not locked after 2 failures: %v", err)
		}
		const next = "green walrus piano 7"
		if _, err := s.Update(t.Context(), alice.ID, identity.Change{Password: ptr(next)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(t.Context(), "alice", next, testIP); err != nil {
			t.Errorf("new password: %v", err)
		}
		if _, err := s.Authenticate(t.Context(), "alice", goodPassword, testIP); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("old password: %v", err)
		}
	})
}

func TestDelete(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	alice := signup(t, s, "Alice")
	bob := signup(t, s, "bob")
	tests := []struct {
		name, key string
		gone      string // ID that must be gone afterwards; "" means the call fails
	}{
		{"by id", alice.ID, alice.ID},
		{"again", alice.ID, ""},
		{"username is not an ID", "bob", ""},
		{"bob by id", bob.ID, bob.ID},
		{"unknown", "carol", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Delete(t.Context(), tc.key)
			if tc.gone == "" {
				if !errors.Is(err, apperr.ErrNotFound) {
					t.Fatalf("Delete(%q) = %v, want not found", tc.key, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Delete(%q): %v", tc.key, err)
			}
			if _, err := store.GetUser(t.Context(), tc.gone); !errors.Is(err, apperr.ErrNotFound) {
				t.Errorf("user %s still stored: %v", tc.gone, err)
			}
		})
	}
	if _, err := s.Authenticate(t.Context(), "alice", goodPassword, testIP); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("deleted user authenticates: %v", err)
	}
	// The name is free again.
	if u := signup(t, s, "alice"); u.ID == alice.ID {
		t.Error("re-created user reused the old ID")
	}
}
func ptr[T any](v T) *T { return &v }
