package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// backends are the stores the service tests that depend on transactions
// run against.
var backends = map[string]func(*testing.T) *storage.Store{
	"sqlite": storagetest.OpenSQLite,
	"mysql":  storagetest.OpenMySQL,
}

// TestIDsAreNeverUsernames: changes addressed by ID never fall back to a
// username. A legacy user whose username is a deleted user's ID (sign-up
// refuses such names now, so it is written to the store directly) must
// survive a retried delete and must not be promoted by set-roles on that
// ID. (Before: Update and Delete looked the key up "by ID or username";
// the retried delete removed the other user.)
func TestIDsAreNeverUsernames(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	ctx := t.Context()
	alice := signup(t, s, "alice")
	squatter := &identity.User{ID: uuid.NewString(), Username: alice.ID, PasswordHash: alice.PasswordHash}
	if err := store.CreateUser(ctx, squatter); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, alice.ID); err != nil {
		t.Fatalf("Delete(alice.ID): %v", err)
	}
	if err := s.Delete(ctx, alice.ID); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("retried Delete(alice.ID) = %v, want not found", err)
	}
	if _, err := s.Update(ctx, alice.ID, identity.Change{Roles: &[]string{"admin"}}); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("Update(alice.ID) = %v, want not found", err)
	}
	if _, err := s.Get(ctx, alice.ID); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("Get(alice.ID) = %v, want not found", err)
	}
	got, err := store.GetUser(ctx, squatter.ID)
	if err != nil {
		t.Fatalf("the user named %s is gone: %v", alice.ID, err)
	}
	if len(got.Roles) != 0 {
		t.Errorf("the user named %s was given roles %v", alice.ID, got.Roles)
	}
	// The explicit username lookup still finds it, and Get by its own ID.
	if u, err := s.GetByUsername(ctx, alice.ID); err != nil || u.ID != squatter.ID {
		t.Errorf("GetByUsername(%s) = %v, %v", alice.ID, u, err)
	}
	if u, err := s.Get(ctx, squatter.ID); err != nil || u.Username != alice.ID {
		t.Errorf("Get(squatter.ID) = %v, %v", u, err)
	}
}

// TestSignupRefusesIDShapedUsernames: every spelling of a UUID that the
// username rules admit is refused at sign-up, so no new user can be
// confused with another's ID; the same names still log in (an account
// created before the rule keeps working).
func TestSignupRefusesIDShapedUsernames(t *testing.T) {
	s, store, _ := newService(t, identity.LockoutPolicy{})
	id := uuid.NewString()
	for _, name := range []string{
		id,
		strings.ToUpper(id),
		strings.ReplaceAll(id, "-", ""),
		"00000000-0000-0000-0000-000000000000",
	} {
		_, err := s.Signup(t.Context(), name, goodPassword, nil)
		if pe, ok := errors.AsType[*identity.PolicyError](err); !ok || pe.Field != "username" {
			t.Errorf("Signup(%q) = %v, want a username *PolicyError", name, err)
		}
	}
	for _, name := range []string{"alice", id + "x", "x" + id, "deadbeef"} {
		if _, err := s.Signup(t.Context(), name, goodPassword, nil); err != nil {
			t.Errorf("Signup(%q) = %v, want success", name, err)
		}
	}
	legacy := signup(t, s, "legacy")
	if _, err := store.UpdateUser(t.Context(), legacy.ID, func(u *identity.User) error { u.Username = id; return nil }); err != nil {
		t.Fatal(err)
	}
	if u, err := s.Authenticate(t.Context(), id, goodPassword, testIP); err != nil || u.ID != legacy.ID {
		t.Errorf("a pre-existing ID-shaped username cannot log in: %v, %v", u, err)
	}
}

// failingRevoker is a SessionRevoker whose revocation always fails after
// doing its real work, as a database that drops the connection at the
// last statement would.
type failingRevoker struct{ *storage.Store }

var errRevokeFailed = errors.New("revocation failed")

func (f failingRevoker) RevokeSubject(ctx context.Context, subject string) error {
	if err := f.Store.RevokeSubject(ctx, subject); err != nil {
		return err
	}
	return errRevokeFailed
}

// TestUserChangeAndRevocationAtomic: a password change, disabling and
// deletion commit together with the revocation of the user's grants or
// not at all. (Before: the change committed first; when the revocation
// then failed, the caller got an error but the new password, the
// disabled flag or the deletion stayed, with the grants alive.)
func TestUserChangeAndRevocationAtomic(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := t.Context()
			s := &identity.Service{
				Store: store, Throttles: store, Hasher: identity.NewPasswordHasher(cheapParams()),
				Policy: identity.DefaultPasswordPolicy(), Sessions: failingRevoker{store},
				Lockout: identity.LockoutPolicy{MaxFailures: 5, Window: time.Hour, Duration: time.Hour},
			}
			alice := signup(t, s, "alice", "user")
			before := getUser(t, store, alice.ID)
			const next = "green walrus piano 7"
			changes := map[string]func() error{
				"password": func() error {
					_, err := s.Update(ctx, alice.ID, identity.Change{Password: ptr(next)})
					return err
				},
				"disable": func() error {
					_, err := s.Update(ctx, alice.ID, identity.Change{Disabled: ptr(true), Roles: &[]string{"x"}})
					return err
				},
				"delete": func() error { return s.Delete(ctx, alice.ID) },
			}
			for _, what := range []string{"password", "disable", "delete"} {
				if err := changes[what](); !errors.Is(err, errRevokeFailed) {
					t.Fatalf("%s: err = %v, want the revocation's error", what, err)
				}
				after, err := store.GetUser(ctx, alice.ID)
				if err != nil {
					t.Fatalf("%s: the user is gone although revocation failed: %v", what, err)
				}
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("%s: written although revocation failed (-before +after):\n%s", what, diff)
				}
			}
			if _, err := s.Authenticate(ctx, "alice", goodPassword, testIP); err != nil {
				t.Errorf("the old password no longer works: %v", err)
			}
			// With a working revoker the same changes go through.
			s.Sessions = store
			if _, err := s.Update(ctx, alice.ID, identity.Change{Password: ptr(next)}); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, alice.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}
