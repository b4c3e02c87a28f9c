package storagetest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/totp"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/cors"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/challenge"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/revocation"
)

// Store is what the suite checks: every storage interface a Portcullis
// store implements for the packages that declare them, and the two methods
// of its own that the server and its token collector call. *storage.Store
// is one; any future store is checked by passing its opener to Run.
type Store interface {
	audit.Store
	identity.Store
	identity.SessionRevoker
	identity.ThrottleStore
	identity.FactorStore
	identity.RecoveryCodeStore
	totp.ResealStore
	clients.Store
	oauth.TokenStore
	oauth.UserLookup
	keys.Store
	cors.ClientOrigins
	revocation.Source
	dpop.ReplayCache
	challenge.Store
	// Ping checks that the database answers (the readiness check).
	Ping(ctx context.Context) error
	// DeleteExpired deletes the refresh tokens, revocations and DPoP
	// proofs that expired before before and returns how many it deleted.
	DeleteExpired(ctx context.Context, before time.Time) (int64, error)
}

// Open returns a fresh, migrated store that is closed when t ends.
type Open func(t *testing.T) Store

// opener turns an opener of a concrete store (OpenSQLite returns a
// *storage.Store) into an Open.
func opener[S Store](open func(*testing.T) S) Open {
	return func(t *testing.T) Store { return open(t) }
}

// Run runs the functional conformance tests against stores from open,
// which may return any implementation of Store (OpenSQLite, OpenMySQL).
func Run[S Store](t *testing.T, openS func(*testing.T) S) {
	open := opener(openS)
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("Clients", func(t *testing.T) { testClients(t, open) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open) })
	t.Run("Revocations", func(t *testing.T) { testRevocations(t, open) })
	t.Run("RefreshTokens", func(t *testing.T) { testRefreshTokens(t, open) })
	t.Run("Revocation", func(t *testing.T) { testRevocation(t, open) })
	t.Run("RevokeSubject", func(t *testing.T) { testRevokeSubject(t, open) })
	t.Run("Transactions", func(t *testing.T) { testTransactions(t, open) })
	t.Run("DeleteExpired", func(t *testing.T) { testDeleteExpired(t, open) })
	t.Run("UpdateUserSerialized", func(t *testing.T) { testUpdateUserSerialized(t, open) })
	t.Run("Throttles", func(t *testing.T) { testThrottles(t, open) })
	t.Run("UsernameExact", func(t *testing.T) { testUsernameExact(t, open) })
	t.Run("DPoPProofs", func(t *testing.T) { testDPoPProofs(t, open) })
	t.Run("Factors", func(t *testing.T) { testFactors(t, open) })
	t.Run("RecoveryCodes", func(t *testing.T) { testRecoveryCodes(t, open) })
	t.Run("DeleteUserDeletesFactors", func(t *testing.T) { testDeleteUserDeletesFactors(t, open) })
	t.Run("ResealFactorSecrets", func(t *testing.T) { testResealFactorSecrets(t, open) })
	t.Run("AuthorizationCodes", func(t *testing.T) { testAuthorizationCodes(t, open) })
	t.Run("AuthSessions", func(t *testing.T) { testAuthSessions(t, open) })
	t.Run("AuditEvents", func(t *testing.T) { testAuditEvents(t, open) })
	t.Run("ListRanges", func(t *testing.T) { testListRanges(t, open) })
	t.Run("Ping", func(t *testing.T) { wantErr(t, "ping", open(t).Ping(ctxTimeout(t)), nil) })
}

// ctxTimeout bounds every test so that a method that ignores the
// transaction in its context (a self-deadlock on SQLite's single
// connection) fails instead of hanging.
func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// t0 has microsecond precision, what every backend stores, so that
// records read back compare equal to what was written.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// same fails t unless got equals want field by field, recursively
// (cmp.Diff): a field added to a stored type is compared without anyone
// listing it. Times compare with Equal; nil and empty lists differ. The
// one field left out is fosite.Request.Lang: a request's language is taken
// from each HTTP request for fosite's error messages and is not stored.
func same[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(fosite.Request{}, "Lang")); diff != "" {
		t.Fatalf("%s mismatch (-want +got):\n%s", what, diff)
	}
}

func newUser(name string) *identity.User {
	return &identity.User{
		ID: uuid.NewString(), Username: name, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA",
		Roles: []string{"reader"}, CreatedAt: t0, UpdatedAt: t0,
	}
}

func sameUser(t *testing.T, got, want *identity.User) {
	t.Helper()
	same(t, "user", got, want)
}

func testUsers(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	alice := newUser("Alice")
	alice.Roles = []string{"admin", "reader"}
	wantErr(t, "create Alice", s.CreateUser(ctx, alice), nil)
	bob := newUser("bob")
	bob.Roles = nil // stored as an empty list
	wantErr(t, "create bob", s.CreateUser(ctx, bob), nil)
	bob.Roles = []string{}

	t.Run("Get", func(t *testing.T) {
		for _, name := range []string{"Alice", "alice", "ALICE"} {
			got, err := s.GetUserByUsername(ctx, name)
			wantErr(t, "get by name "+name, err, nil)
			sameUser(t, got, alice)
		}
		got, err := s.GetUser(ctx, alice.ID)
		wantErr(t, "get by id", err, nil)
		sameUser(t, got, alice)
		got, err = s.GetUser(ctx, bob.ID)
		wantErr(t, "get bob", err, nil)
		sameUser(t, got, bob)
	})

	t.Run("Errors", func(t *testing.T) {
		dupID := newUser("someone-else")
		dupID.ID = alice.ID
		tests := []struct {
			name string
			call func() error
			want error
		}{
			{"duplicate name, other case", func() error { return s.CreateUser(ctx, newUser("aLiCe")) }, apperr.ErrAlreadyExists},
			{"duplicate id", func() error { return s.CreateUser(ctx, dupID) }, apperr.ErrAlreadyExists},
			{"get unknown id", func() error { _, err := s.GetUser(ctx, uuid.NewString()); return err }, apperr.ErrNotFound},
			{"get unknown name", func() error { _, err := s.GetUserByUsername(ctx, "nobody"); return err }, apperr.ErrNotFound},
			{"update unknown", func() error {
				_, err := s.UpdateUser(ctx, uuid.NewString(), func(*identity.User) error { return nil })
				return err
			}, apperr.ErrNotFound},
			{"rename onto taken name", func() error {
				_, err := s.UpdateUser(ctx, bob.ID, func(u *identity.User) error { u.Username = "ALICE"; return nil })
				return err
			}, apperr.ErrAlreadyExists},
			{"delete unknown", func() error { return s.DeleteUser(ctx, uuid.NewString()) }, apperr.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), tt.want) })
		}
		// The first application error in a store error's chain is the
		// one the HTTP layer maps (404, 409): nothing may hide it.
		_, err := s.GetUser(ctx, uuid.NewString())
		if code := apperr.CodeOf(err); code != apperr.ENotFound {
			t.Errorf("GetUser(unknown) = %v: code %s, want %s", err, code, apperr.ENotFound)
		}
		err = s.CreateUser(ctx, newUser("ALICE"))
		if code := apperr.CodeOf(err); code != apperr.EConflict {
			t.Errorf("CreateUser(duplicate) = %v: code %s, want %s", err, code, apperr.EConflict)
		}
		users, err := s.ListUsers(ctx)
		wantErr(t, "list", err, nil)
		if len(users) != 2 {
			t.Fatalf("failed creates wrote something: %d users", len(users))
		}
		got, _ := s.GetUser(ctx, bob.ID)
		sameUser(t, got, bob)
	})

	t.Run("List", func(t *testing.T) {
		carol := newUser("carol")
		wantErr(t, "create carol", s.CreateUser(ctx, carol), nil)
		defer func() { _ = s.DeleteUser(ctx, carol.ID) }()
		users, err := s.ListUsers(ctx)
		wantErr(t, "list", err, nil)
		same(t, "ListUsers, by username", users, []*identity.User{alice, bob, carol})
	})

	t.Run("Update", func(t *testing.T) {
		later := t0.Add(2 * time.Hour)
		got, err := s.UpdateUser(ctx, alice.ID, func(u *identity.User) error {
			sameUser(t, u, alice)
			u.Roles = []string{"auditor"}
			u.Disabled = true
			u.UpdatedAt = later
			return nil
		})
		wantErr(t, "update", err, nil)
		alice.Roles, alice.Disabled, alice.UpdatedAt = []string{"auditor"}, true, later
		sameUser(t, got, alice)
		stored, _ := s.GetUser(ctx, alice.ID)
		sameUser(t, stored, alice)

		// Renaming keeps case-insensitive lookup working.
		_, err = s.UpdateUser(ctx, alice.ID, func(u *identity.User) error { u.Username = "Alicia"; return nil })
		wantErr(t, "rename", err, nil)
		if _, err := s.GetUserByUsername(ctx, "ALICIA"); err != nil {
			t.Fatalf("lookup after rename: %v", err)
		}
		if _, err := s.GetUserByUsername(ctx, "alice"); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("old name still resolves: %v", err)
		}
		alice.Username = "Alicia"
	})

	t.Run("UpdateErrorWritesNothing", func(t *testing.T) {
		boom := errors.New("policy says no")
		_, err := s.UpdateUser(ctx, alice.ID, func(u *identity.User) error {
			u.Roles = []string{"root"}
			u.PasswordHash = "changed"
			return boom
		})
		if err != boom { //nolint:errorlint // the contract is "that error is returned"
			t.Fatalf("UpdateUser returned %v, want the closure's error unchanged", err)
		}
		stored, _ := s.GetUser(ctx, alice.ID)
		sameUser(t, stored, alice)
	})

	t.Run("Delete", func(t *testing.T) {
		wantErr(t, "delete", s.DeleteUser(ctx, bob.ID), nil)
		_, err := s.GetUser(ctx, bob.ID)
		wantErr(t, "get deleted", err, apperr.ErrNotFound)
		_, err = s.GetUserByUsername(ctx, "bob")
		wantErr(t, "get deleted by name", err, apperr.ErrNotFound)
		wantErr(t, "delete again", s.DeleteUser(ctx, bob.ID), apperr.ErrNotFound)
		// The name is free again.
		wantErr(t, "re-create bob", s.CreateUser(ctx, newUser("BOB")), nil)
	})
}

func newClient(name string) *clients.Client {
	return &clients.Client{
		ID: uuid.NewString(), Name: name, SecretHash: []byte("0123456789abcdef0123456789abcdef"),
		AuthMethod: clients.AuthSecretBasic, GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken},
		Scopes: []string{"read", "write"}, Audience: []string{"https://api.example.test"},
		CORSOrigins: []string{}, CreatedAt: t0, UpdatedAt: t0,
	}
}

func sameClient(t *testing.T, got, want *clients.Client) {
	t.Helper()
	same(t, "client", got, want)
}

func testClients(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	app := newClient("app")
	app.IntrospectionAllowed = true  // round-trips both values of the flag
	app.DPoPBoundAccessTokens = true // likewise
	app.AccessTokenSigningAlg = string(keys.RS256)
	app.CORSOrigins = []string{"http://localhost:5173", "https://app.example.test"}
	public := newClient("cli")
	public.SecretHash, public.AuthMethod = nil, clients.AuthNone
	public.Audience = []string{}
	public.CreatedAt = t0.Add(time.Second)
	for _, c := range []*clients.Client{app, public} {
		wantErr(t, "create "+c.Name, s.CreateClient(ctx, c), nil)
	}

	t.Run("Get", func(t *testing.T) {
		for _, want := range []*clients.Client{app, public} {
			got, err := s.FindClient(ctx, want.ID)
			wantErr(t, "find", err, nil)
			sameClient(t, got, want)
			fc, err := s.GetClient(ctx, want.ID)
			wantErr(t, "GetClient", err, nil)
			oc, ok := fc.(*oauth.Client)
			if !ok {
				t.Fatalf("GetClient returned %T, want *oauth.Client", fc)
			}
			sameClient(t, oc.Client, want)
		}
		list, err := s.ListClients(ctx)
		wantErr(t, "list", err, nil)
		same(t, "ListClients, by creation", list, []*clients.Client{app, public})
	})

	t.Run("Errors", func(t *testing.T) {
		dup := newClient("dup")
		dup.ID = app.ID
		tests := []struct {
			name string
			call func() error
			want error
		}{
			{"duplicate id", func() error { return s.CreateClient(ctx, dup) }, apperr.ErrAlreadyExists},
			{"find unknown", func() error { _, err := s.FindClient(ctx, "nope"); return err }, apperr.ErrNotFound},
			{"GetClient unknown", func() error { _, err := s.GetClient(ctx, "nope"); return err }, fosite.ErrNotFound},
			{"update unknown", func() error {
				_, err := s.UpdateClient(ctx, "nope", func(*clients.Client) error { return nil })
				return err
			}, apperr.ErrNotFound},
			{"delete unknown", func() error { return s.DeleteClient(ctx, "nope") }, apperr.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), tt.want) })
		}
		got, _ := s.FindClient(ctx, app.ID)
		sameClient(t, got, app)
	})

	t.Run("Update", func(t *testing.T) {
		boom := errors.New("no")
		_, err := s.UpdateClient(ctx, app.ID, func(c *clients.Client) error { c.Name = "changed"; return boom })
		if err != boom { //nolint:errorlint // the contract is "that error is returned"
			t.Fatalf("UpdateClient returned %v, want the closure's error", err)
		}
		got, _ := s.FindClient(ctx, app.ID)
		sameClient(t, got, app)

		got, err = s.UpdateClient(ctx, app.ID, func(c *clients.Client) error {
			c.Name, c.SecretHash, c.Scopes, c.UpdatedAt = "renamed", []byte("new-hash"), []string{"read"}, t0.Add(time.Minute)
			return nil
		})
		wantErr(t, "update", err, nil)
		app.Name, app.SecretHash, app.Scopes, app.UpdatedAt = "renamed", []byte("new-hash"), []string{"read"}, t0.Add(time.Minute)
		sameClient(t, got, app)
		got, _ = s.FindClient(ctx, app.ID)
		sameClient(t, got, app)

		// The introspection permission is withdrawn and granted again.
		for _, allowed := range []bool{false, true} {
			got, err = s.UpdateClient(ctx, app.ID, func(c *clients.Client) error { c.IntrospectionAllowed = allowed; return nil })
			wantErr(t, "update introspection_allowed", err, nil)
			app.IntrospectionAllowed = allowed
			sameClient(t, got, app)
			got, _ = s.FindClient(ctx, app.ID)
			sameClient(t, got, app)
			fc, _ := s.GetClient(ctx, app.ID)
			sameClient(t, fc.(*oauth.Client).Client, app)
		}

		// dpop_bound_access_tokens is cleared and set again, and the
		// fosite view of the client says so.
		for _, bound := range []bool{false, true} {
			got, err = s.UpdateClient(ctx, app.ID, func(c *clients.Client) error { c.DPoPBoundAccessTokens = bound; return nil })
			wantErr(t, "update dpop_bound_access_tokens", err, nil)
			app.DPoPBoundAccessTokens = bound
			sameClient(t, got, app)
			got, _ = s.FindClient(ctx, app.ID)
			sameClient(t, got, app)
			fc, _ := s.GetClient(ctx, app.ID)
			if oc := fc.(*oauth.Client); oc.DPoPBoundAccessTokens() != bound {
				t.Fatalf("GetClient: DPoPBoundAccessTokens() = %v, want %v", !bound, bound)
			}
		}
	})

	t.Run("CORSOrigins", func(t *testing.T) {
		tests := []struct {
			client, origin string
			want, wantAny  bool
		}{
			{app.ID, "https://app.example.test", true, true},
			{app.ID, "http://localhost:5173", true, true},
			{public.ID, "https://app.example.test", false, true}, // another client's origin
			{app.ID, "https://APP.example.test", false, false},   // exact, whatever the collation
			{app.ID, "https://app.example.tes", false, false},    // no prefix match
			{app.ID, "https://app_example.test", false, false},   // LIKE wildcards are literal
			{app.ID, "%", false, false},
			{"nope", "https://app.example.test", false, true}, // unknown client
		}
		for _, tt := range tests {
			got, err := s.ClientAllowsOrigin(ctx, tt.client, tt.origin)
			wantErr(t, "ClientAllowsOrigin", err, nil)
			anyGot, err := s.AnyClientAllowsOrigin(ctx, tt.origin)
			wantErr(t, "AnyClientAllowsOrigin", err, nil)
			if got != tt.want || anyGot != tt.wantAny {
				t.Fatalf("origin %q, client %s: ClientAllowsOrigin %v (want %v), AnyClientAllowsOrigin %v (want %v)",
					tt.origin, tt.client, got, tt.want, anyGot, tt.wantAny)
			}
		}
		// The list is replaced and cleared.
		for _, origins := range [][]string{{"https://b.example.test"}, {}} {
			got, err := s.UpdateClient(ctx, app.ID, func(c *clients.Client) error { c.CORSOrigins = origins; return nil })
			wantErr(t, "update allowed_cors_origins", err, nil)
			app.CORSOrigins = origins
			sameClient(t, got, app)
			got, _ = s.FindClient(ctx, app.ID)
			sameClient(t, got, app)
			if ok, _ := s.AnyClientAllowsOrigin(ctx, "https://app.example.test"); ok {
				t.Fatal("a removed origin is still allowed")
			}
		}
	})

	t.Run("DeleteCascadesTokens", func(t *testing.T) {
		other := newClient("other")
		wantErr(t, "create other", s.CreateClient(ctx, other), nil)
		req := newRequest(app, "user-1")
		otherReq := newRequest(other, "user-2")
		wantErr(t, "create rt", s.CreateRefreshTokenSession(ctx, "rt-app", "at-app", req), nil)
		wantErr(t, "create other rt", s.CreateRefreshTokenSession(ctx, "rt-other", "at-other", otherReq), nil)

		wantErr(t, "delete", s.DeleteClient(ctx, app.ID), nil)
		_, err := s.FindClient(ctx, app.ID)
		wantErr(t, "find deleted", err, apperr.ErrNotFound)
		_, err = s.GetRefreshTokenSession(ctx, "rt-app", newSession())
		wantErr(t, "refresh token of deleted client", err, fosite.ErrNotFound)
		_, err = s.GetRefreshTokenSession(ctx, "rt-other", newSession())
		wantErr(t, "other client's token", err, nil)
	})
}

func newKey(id string, gen int64) keys.Record {
	return keys.Record{
		ID: id, Algorithm: keys.ES256, Generation: gen,
		PublicJWK: []byte(`{"kty":"EC","crv":"P-256","kid":"` + id + `"}`),
		Sealed:    []byte{0, 1, 2, 0xff, byte(gen)}, WrapKeyID: "wrap-1",
		CreatedAt: t0, ActivatesAt: t0.Add(time.Duration(gen) * time.Hour),
	}
}

func sameKeys(t *testing.T, got, want []keys.Record) {
	t.Helper()
	same(t, "keys", got, want)
}

func testKeys(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	list := func() []keys.Record {
		t.Helper()
		recs, err := s.ListKeys(ctx)
		wantErr(t, "list keys", err, nil)
		return recs
	}
	k1, k2 := newKey("k1", 1), newKey("k2", 2)
	wantErr(t, "create k1", s.CreateKey(ctx, k1, t0), nil)
	sameKeys(t, list(), []keys.Record{k1})

	// Creating k2 retires k1 at k2's activation.
	wantErr(t, "create k2", s.CreateKey(ctx, k2, k2.ActivatesAt), nil)
	k1.RetiredAt = k2.ActivatesAt
	sameKeys(t, list(), []keys.Record{k1, k2})

	// RFC 9068 §2.1: each algorithm has its own signing key; a key of
	// another algorithm retires only its own kind (none here).
	r1 := newKey("r1", 3)
	r1.Algorithm = keys.RS256
	wantErr(t, "create RS256 r1", s.CreateKey(ctx, r1, r1.ActivatesAt), nil)
	sameKeys(t, list(), []keys.Record{k1, k2, r1})
	wantErr(t, "delete r1", s.DeleteKey(ctx, "r1"), nil)

	t.Run("CompareAndSet", func(t *testing.T) {
		tests := []struct {
			name string
			rec  keys.Record
		}{
			{"generation taken", newKey("k2-rival", 2)},
			{"id taken", newKey("k2", 3)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.CreateKey(ctx, tt.rec, t0.Add(99*time.Hour))
				wantErr(t, "create", err, apperr.ErrAlreadyExists)
				sameKeys(t, list(), []keys.Record{k1, k2}) // k2 not retired, nothing inserted
			})
		}
	})

	t.Run("Reseal", func(t *testing.T) {
		err := s.ResealKey(ctx, "k2", "wrap-other", "wrap-2", []byte("x"))
		wantErr(t, "reseal from wrong wrap key", err, apperr.ErrNotFound)
		err = s.ResealKey(ctx, "nope", "wrap-1", "wrap-2", []byte("x"))
		wantErr(t, "reseal unknown", err, apperr.ErrNotFound)
		sameKeys(t, list(), []keys.Record{k1, k2})
		wantErr(t, "reseal", s.ResealKey(ctx, "k2", "wrap-1", "wrap-2", []byte("resealed")), nil)
		k2.WrapKeyID, k2.Sealed = "wrap-2", []byte("resealed")
		sameKeys(t, list(), []keys.Record{k1, k2})
		err = s.ResealKey(ctx, "k2", "wrap-1", "wrap-3", []byte("again"))
		wantErr(t, "reseal twice from the old wrap key", err, apperr.ErrNotFound)
	})

	t.Run("Delete", func(t *testing.T) {
		wantErr(t, "delete k1", s.DeleteKey(ctx, "k1"), nil)
		wantErr(t, "delete missing", s.DeleteKey(ctx, "k1"), nil)
		sameKeys(t, list(), []keys.Record{k2})
	})
}

// newSession returns the session shape the oauth package uses.
func newSession() *oauth2.JWTSession {
	return &oauth2.JWTSession{
		JWTClaims: &jwt.JWTClaims{Extra: map[string]any{}},
		JWTHeader: &jwt.Headers{Extra: map[string]any{}},
		ExpiresAt: map[fosite.TokenType]time.Time{},
	}
}

// newRequest returns a sanitized token request for client, as fosite
// stores it, with a JWT session for subject.
func newRequest(client *clients.Client, subject string) *fosite.Request {
	sess := newSession()
	sess.Subject, sess.Username = subject, subject+"-name"
	sess.JWTClaims.Subject = subject
	sess.JWTClaims.Issuer = "https://as.example.test"
	sess.JWTClaims.IssuedAt, sess.JWTClaims.NotBefore = t0, t0
	sess.JWTClaims.JTI = uuid.NewString()
	sess.JWTClaims.Audience = []string{"https://api.example.test"}
	sess.JWTClaims.Extra["client_id"] = client.ID
	sess.JWTClaims.Extra["roles"] = []any{"admin", "reader"}
	sess.JWTHeader.Extra["typ"] = "at+jwt"
	sess.ExpiresAt[fosite.AccessToken] = time.Now().UTC().Add(15 * time.Minute).Truncate(time.Microsecond)
	sess.ExpiresAt[fosite.RefreshToken] = time.Now().UTC().Add(720 * time.Hour).Truncate(time.Microsecond)
	req := fosite.NewRequest()
	req.ID = uuid.NewString()
	req.Client = &oauth.Client{Client: client}
	req.RequestedAt = t0
	req.RequestedScope = fosite.Arguments{"read", "write"}
	req.GrantedScope = fosite.Arguments{"read"}
	req.RequestedAudience = fosite.Arguments{"https://api.example.test"}
	req.GrantedAudience = fosite.Arguments{"https://api.example.test"}
	req.Form = url.Values{"grant_type": {"password"}, "scope": {"read write"}}
	req.Session = sess
	return req
}

// sameRequest compares a stored request with the one written, whole:
// the store rebuilds a *fosite.Request around its *oauth.Client and
// decodes the session into the one it is given (newSession's
// *oauth2.JWTSession), so every field of both, the client's and the
// session's claims included, must survive the round trip.
func sameRequest(t *testing.T, got fosite.Requester, want *fosite.Request) {
	t.Helper()
	if got == nil {
		t.Fatal("requester is nil")
	}
	r, ok := got.(*fosite.Request)
	if !ok {
		t.Fatalf("requester is %T, want *fosite.Request", got)
	}
	if _, ok := r.Client.(*oauth.Client); !ok {
		t.Fatalf("requester client is %T, want *oauth.Client", r.Client)
	}
	if _, ok := r.Session.(*oauth2.JWTSession); !ok {
		t.Fatalf("session is %T, want *oauth2.JWTSession", r.Session)
	}
	same(t, "request", r, want)
}

func tokenFixture(t *testing.T, open Open) (Store, context.Context, *clients.Client) {
	s := open(t)
	ctx := ctxTimeout(t)
	c := newClient("app")
	wantErr(t, "create client", s.CreateClient(ctx, c), nil)
	return s, ctx, c
}

// revokedGrants returns the grant IDs s has recorded as revoked, in
// order, checking that the entries are ordered by ID and expire after
// notBefore.
func revokedGrants(t *testing.T, s Store, notBefore time.Time) []string {
	t.Helper()
	es, err := s.RevocationsAfter(ctxTimeout(t), 0, 1000)
	wantErr(t, "revocations", err, nil)
	var ids []string
	for i, e := range es {
		if i > 0 && e.ID <= es[i-1].ID {
			t.Fatalf("revocations not in ID order: %+v", es)
		}
		if !e.ExpiresAt.After(notBefore) {
			t.Fatalf("revocation of %s expires at %v, before %v", e.GrantID, e.ExpiresAt, notBefore)
		}
		ids = append(ids, e.GrantID)
	}
	return ids
}

// testRevocations: RevokeAccessToken records the grant (access tokens are
// not stored); RevocationsAfter pages through the records in ID order.
func testRevocations(t *testing.T, open Open) {
	s, ctx, _ := tokenFixture(t, open)
	start := time.Now()
	for _, g := range []string{"g-1", "g-2", "g-3", "g-1"} {
		wantErr(t, "revoke "+g, s.RevokeAccessToken(ctx, g), nil)
	}
	// Kept at least as long as the longest access token (24h by default).
	if got, want := revokedGrants(t, s, start.Add(24*time.Hour)), []string{"g-1", "g-2", "g-3", "g-1"}; !slices.Equal(got, want) {
		t.Fatalf("revoked grants %v, want %v", got, want)
	}
	all, err := s.RevocationsAfter(ctx, 0, 1000)
	wantErr(t, "all", err, nil)
	page, err := s.RevocationsAfter(ctx, all[0].ID, 2)
	wantErr(t, "page", err, nil)
	if len(page) != 2 || page[0].ID != all[1].ID || page[1].ID != all[2].ID {
		t.Fatalf("page after the first: %+v, want entries 2 and 3 of %+v", page, all)
	}
	rest, err := s.RevocationsAfter(ctx, all[3].ID, 10)
	wantErr(t, "after the last", err, nil)
	if len(rest) != 0 {
		t.Fatalf("after the last: %+v", rest)
	}
	t.Run("rolled back", func(t *testing.T) {
		tx, err := s.BeginTX(ctx)
		wantErr(t, "begin", err, nil)
		wantErr(t, "revoke", s.RevokeAccessToken(tx, "g-rolled-back"), nil)
		wantErr(t, "rollback", s.Rollback(tx), nil)
		if got := revokedGrants(t, s, start); slices.Contains(got, "g-rolled-back") {
			t.Fatalf("a rolled back revocation is stored: %v", got)
		}
	})
}

func testRefreshTokens(t *testing.T, open Open) {
	s, ctx, c := tokenFixture(t, open)
	req := newRequest(c, "user-1")
	wantErr(t, "create rt", s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req), nil)

	got, err := s.GetRefreshTokenSession(ctx, "rt-1", newSession())
	wantErr(t, "get", err, nil)
	sameRequest(t, got, req)
	_, err = s.GetRefreshTokenSession(ctx, "unknown", newSession())
	wantErr(t, "get unknown", err, fosite.ErrNotFound)

	t.Run("Rotate", func(t *testing.T) {
		tx, err := s.BeginTX(ctx)
		wantErr(t, "begin", err, nil)
		wantErr(t, "rotate", s.RotateRefreshToken(tx, req.ID, "rt-1"), nil)
		wantErr(t, "create new rt", s.CreateRefreshTokenSession(tx, "rt-2", "at-2", req), nil)
		wantErr(t, "commit", s.Commit(tx), nil)

		// The old refresh token is inactive but still returns its request,
		// which fosite's reuse detection needs.
		got, err := s.GetRefreshTokenSession(ctx, "rt-1", newSession())
		wantErr(t, "get rotated", err, fosite.ErrInactiveToken)
		sameRequest(t, got, req)
		// The new one works; rotation revokes no grant.
		if got := revokedGrants(t, s, time.Time{}); len(got) != 0 {
			t.Fatalf("rotation recorded revocations %v", got)
		}
		_, err = s.GetRefreshTokenSession(ctx, "rt-2", newSession())
		wantErr(t, "new refresh token", err, nil)

		tests := []struct {
			name, requestID, sig string
		}{
			{"twice", req.ID, "rt-1"},
			{"unknown token", req.ID, "rt-unknown"},
			{"other family", uuid.NewString(), "rt-2"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantErr(t, "rotate", s.RotateRefreshToken(ctx, tt.requestID, tt.sig), fosite.ErrInactiveToken)
			})
		}
	})

	t.Run("Delete", func(t *testing.T) {
		wantErr(t, "delete", s.DeleteRefreshTokenSession(ctx, "rt-1"), nil)
		_, err := s.GetRefreshTokenSession(ctx, "rt-1", newSession())
		wantErr(t, "get deleted", err, fosite.ErrNotFound)
		wantErr(t, "delete unknown", s.DeleteRefreshTokenSession(ctx, "rt-1"), nil)
	})
}

func testRevocation(t *testing.T, open Open) {
	s, ctx, c := tokenFixture(t, open)
	fam, other := newRequest(c, "user-1"), newRequest(c, "user-2")
	for _, step := range []struct {
		req    *fosite.Request
		at, rt string
	}{{fam, "at-a", "rt-a"}, {fam, "at-b", "rt-b"}, {other, "at-o", "rt-o"}} {
		wantErr(t, "create rt", s.CreateRefreshTokenSession(ctx, step.rt, step.at, step.req), nil)
	}
	wantErr(t, "revoke refresh", s.RevokeRefreshToken(ctx, fam.ID), nil)
	wantErr(t, "revoke access", s.RevokeAccessToken(ctx, fam.ID), nil)
	wantErr(t, "revoke unknown refresh family", s.RevokeRefreshToken(ctx, "nope"), nil)
	wantErr(t, "revoke unknown access family", s.RevokeAccessToken(ctx, "nope"), nil)
	if got, want := revokedGrants(t, s, time.Now()), []string{fam.ID, "nope"}; !slices.Equal(got, want) {
		t.Fatalf("revoked grants %v, want %v", got, want)
	}

	tests := []struct {
		name    string
		get     func(context.Context, string, fosite.Session) (fosite.Requester, error)
		sig     string
		want    error
		wantReq bool
	}{
		{"family refresh a", s.GetRefreshTokenSession, "rt-a", fosite.ErrInactiveToken, true},
		{"family refresh b", s.GetRefreshTokenSession, "rt-b", fosite.ErrInactiveToken, true},
		{"other refresh", s.GetRefreshTokenSession, "rt-o", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.get(ctx, tt.sig, newSession())
			wantErr(t, "get", err, tt.want)
			if tt.wantReq && got == nil {
				t.Fatal("requester is nil")
			}
		})
	}
	// Rotating a revoked refresh token fails.
	wantErr(t, "rotate revoked", s.RotateRefreshToken(ctx, fam.ID, "rt-b"), fosite.ErrInactiveToken)
}

func testTransactions(t *testing.T, open Open) {
	s, ctx, c := tokenFixture(t, open)
	exists := func(sig string) bool {
		t.Helper()
		_, err := s.GetRefreshTokenSession(ctx, sig, newSession())
		if err != nil && !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("get %s: %v", sig, err)
		}
		return err == nil
	}
	tests := []struct {
		name string
		run  func(t *testing.T, sig string)
		want bool
	}{
		{"commit", func(t *testing.T, sig string) {
			tx, err := s.BeginTX(ctx)
			wantErr(t, "begin", err, nil)
			wantErr(t, "create", s.CreateRefreshTokenSession(tx, sig, "", newRequest(c, "u")), nil)
			// Reads inside the transaction see its writes.
			_, err = s.GetRefreshTokenSession(tx, sig, newSession())
			wantErr(t, "read own write", err, nil)
			wantErr(t, "commit", s.Commit(tx), nil)
			wantErr(t, "rollback after commit", s.Rollback(tx), nil)
		}, true},
		{"rollback", func(t *testing.T, sig string) {
			tx, err := s.BeginTX(ctx)
			wantErr(t, "begin", err, nil)
			wantErr(t, "create", s.CreateRefreshTokenSession(tx, sig, "", newRequest(c, "u")), nil)
			wantErr(t, "rollback", s.Rollback(tx), nil)
		}, false},
		{"nested commit is the outer caller's", func(t *testing.T, sig string) {
			outer, err := s.BeginTX(ctx)
			wantErr(t, "begin outer", err, nil)
			inner, err := s.BeginTX(outer)
			wantErr(t, "begin inner", err, nil)
			wantErr(t, "create", s.CreateRefreshTokenSession(inner, sig, "", newRequest(c, "u")), nil)
			wantErr(t, "commit inner", s.Commit(inner), nil)
			wantErr(t, "rollback outer", s.Rollback(outer), nil)
		}, false},
		{"nested rollback fails the outer commit", func(t *testing.T, sig string) {
			outer, err := s.BeginTX(ctx)
			wantErr(t, "begin outer", err, nil)
			inner, err := s.BeginTX(outer)
			wantErr(t, "begin inner", err, nil)
			wantErr(t, "create", s.CreateRefreshTokenSession(inner, sig, "", newRequest(c, "u")), nil)
			wantErr(t, "rollback inner", s.Rollback(inner), nil)
			if err := s.Commit(outer); err == nil {
				t.Fatal("outer commit succeeded after a nested rollback")
			}
		}, false},
		{"closure update inside a transaction", func(t *testing.T, sig string) {
			u := newUser("tx-user-" + sig)
			wantErr(t, "create user", s.CreateUser(ctx, u), nil)
			tx, err := s.BeginTX(ctx)
			wantErr(t, "begin", err, nil)
			wantErr(t, "create", s.CreateRefreshTokenSession(tx, sig, "", newRequest(c, "u")), nil)
			_, err = s.UpdateUser(tx, u.ID, func(u *identity.User) error { u.Roles = []string{"seven"}; return nil })
			wantErr(t, "update in tx", err, nil)
			boom := errors.New("boom")
			_, err = s.UpdateUser(tx, u.ID, func(u *identity.User) error { u.Roles = []string{"eight"}; return boom })
			wantErr(t, "failed update in tx", err, boom)
			wantErr(t, "commit", s.Commit(tx), nil)
			got, _ := s.GetUser(ctx, u.ID)
			if !slices.Equal(got.Roles, []string{"seven"}) {
				t.Fatalf("Roles = %v, want [seven] (failed nested update rolled back to its savepoint)", got.Roles)
			}
		}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := fmt.Sprintf("tx-%d", i)
			tt.run(t, sig)
			if got := exists(sig); got != tt.want {
				t.Fatalf("row exists = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("without BeginTX", func(t *testing.T) {
		if err := s.Commit(ctx); err == nil {
			t.Fatal("Commit without a transaction succeeded")
		}
		if err := s.Rollback(ctx); err == nil {
			t.Fatal("Rollback without a transaction succeeded")
		}
	})
}

func testDeleteExpired(t *testing.T, open Open) {
	s, ctx, c := tokenFixture(t, open)
	now := time.Now().UTC()
	toks := []struct {
		sig  string
		exp  time.Time
		kept bool
	}{
		{"rt-old", now.Add(-time.Hour), false},
		{"rt-new", now.Add(time.Hour), true},
		{"rt-forever", time.Time{}, true},
	}
	for _, tk := range toks {
		req := newRequest(c, "u")
		sess := req.Session.(*oauth2.JWTSession)
		sess.ExpiresAt[fosite.RefreshToken] = tk.exp
		if tk.exp.IsZero() {
			delete(sess.ExpiresAt, fosite.RefreshToken)
		}
		wantErr(t, "create "+tk.sig, s.CreateRefreshTokenSession(ctx, tk.sig, "", req), nil)
	}
	wantErr(t, "revoke", s.RevokeAccessToken(ctx, "g-1"), nil)
	n, err := s.DeleteExpired(ctx, now)
	wantErr(t, "delete expired", err, nil)
	if n != 1 {
		t.Fatalf("DeleteExpired removed %d rows, want 1", n)
	}
	for _, tk := range toks {
		_, err := s.GetRefreshTokenSession(ctx, tk.sig, newSession())
		if kept := err == nil; kept != tk.kept {
			t.Errorf("%s: kept = %v (err %v), want %v", tk.sig, kept, err, tk.kept)
		}
	}
	if got := revokedGrants(t, s, now); !slices.Equal(got, []string{"g-1"}) {
		t.Fatalf("a live revocation was deleted: %v", got)
	}
	// A revocation expires once every access token of its grant has.
	n, err = s.DeleteExpired(ctx, now.Add(48*time.Hour))
	wantErr(t, "delete expired later", err, nil)
	if n != 2 { // rt-new and the revocation
		t.Fatalf("DeleteExpired 48h later removed %d rows, want 2", n)
	}
	if got := revokedGrants(t, s, now); len(got) != 0 {
		t.Fatalf("an expired revocation is kept: %v", got)
	}
}

// testUpdateUserSerialized checks that UpdateUser serializes
// read-modify-write: 20 concurrent role additions all land.
func testUpdateUserSerialized(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	u := newUser("locky")
	wantErr(t, "create", s.CreateUser(ctx, u), nil)
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.UpdateUser(ctx, u.ID, func(u *identity.User) error {
				u.Roles = append(u.Roles, fmt.Sprintf("r%02d", i))
				return nil
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("UpdateUser: %v", err)
		}
	}
	got, err := s.GetUser(ctx, u.ID)
	wantErr(t, "get", err, nil)
	if len(got.Roles) != n+1 {
		t.Fatalf("%d roles after %d concurrent additions: %v", len(got.Roles), n, got.Roles)
	}
}

// testRevokeSubject: every grant of one subject ends, others are untouched.
func testRevokeSubject(t *testing.T, open Open) {
	s, ctx, c := tokenFixture(t, open)
	a1, a2, b := newRequest(c, "user-1"), newRequest(c, "user-1"), newRequest(c, "user-2")
	for _, step := range []struct {
		req    *fosite.Request
		at, rt string
	}{{a1, "at-1", "rt-1"}, {a2, "at-2", "rt-2"}, {b, "at-b", "rt-b"}} {
		wantErr(t, "create rt", s.CreateRefreshTokenSession(ctx, step.rt, step.at, step.req), nil)
	}
	// A grant already revoked (all its refresh tokens inactive) is not
	// recorded again.
	done := newRequest(c, "user-1")
	wantErr(t, "create rt", s.CreateRefreshTokenSession(ctx, "rt-done", "", done), nil)
	wantErr(t, "revoke done", s.RevokeRefreshToken(ctx, done.ID), nil)
	start := time.Now()
	wantErr(t, "revoke subject", s.RevokeSubject(ctx, "user-1"), nil)
	wantErr(t, "revoke unknown subject", s.RevokeSubject(ctx, "nobody"), nil)
	// Both grants of user-1 are revoked, each once; user-2's is not.
	got := revokedGrants(t, s, start.Add(24*time.Hour))
	slices.Sort(got)
	want := []string{a1.ID, a2.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("revoked grants %v, want %v (user-1's)", got, want)
	}
	for _, tt := range []struct {
		name string
		get  func(context.Context, string, fosite.Session) (fosite.Requester, error)
		sig  string
		want error
	}{
		{"refresh 1", s.GetRefreshTokenSession, "rt-1", fosite.ErrInactiveToken},
		{"refresh 2", s.GetRefreshTokenSession, "rt-2", fosite.ErrInactiveToken},
		{"other subject refresh", s.GetRefreshTokenSession, "rt-b", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.get(ctx, tt.sig, newSession())
			wantErr(t, "get", err, tt.want)
		})
	}
}
