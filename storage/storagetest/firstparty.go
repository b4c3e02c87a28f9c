package storagetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/oauth/challenge"
)

// codeRequest is newRequest as the challenge endpoint stores a code: the
// PKCE challenge in the form and the code's expiry in the session.
func codeRequest(t *testing.T, s Store, subject string) *fosite.Request {
	t.Helper()
	c := newClient("app-" + uuid.NewString()[:8])
	wantErr(t, "create client", s.CreateClient(ctxTimeout(t), c), nil)
	req := newRequest(c, subject)
	req.Form.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
	req.Form.Set("code_challenge_method", "S256")
	req.Session.(interface {
		SetExpiresAt(fosite.TokenType, time.Time)
	}).SetExpiresAt(fosite.AuthorizeCode, time.Now().UTC().Add(time.Minute).Truncate(time.Microsecond))
	return req
}

// testAuthorizationCodes checks the code storage fosite's authorization
// code and PKCE handlers use: the round trip (the PKCE storage hands back
// the code's own request), single redemption with exactly one winner of
// concurrent ones, a redeemed code reported with its request and
// fosite.ErrInvalidatedAuthorizeCode, and RevokeSubject voiding unredeemed
// codes and recording the grants of redeemed ones.
func testAuthorizationCodes(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	req := codeRequest(t, s, "user-1")
	wantErr(t, "create code", s.CreateAuthorizeCodeSession(ctx, "sig-1", req), nil)
	got, err := s.GetAuthorizeCodeSession(ctx, "sig-1", newSession())
	wantErr(t, "get code", err, nil)
	sameRequest(t, got, req)
	got, err = s.GetPKCERequestSession(ctx, "sig-1", newSession())
	wantErr(t, "get pkce", err, nil)
	if got.GetRequestForm().Get("code_challenge") != req.Form.Get("code_challenge") {
		t.Fatalf("PKCE request lost the code_challenge: %v", got.GetRequestForm())
	}
	_, err = s.GetAuthorizeCodeSession(ctx, "sig-unknown", newSession())
	wantErr(t, "get unknown code", err, fosite.ErrNotFound)
	wantErr(t, "delete pkce", s.DeletePKCERequestSession(ctx, "sig-1"), nil)

	// Concurrent redemptions: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.InvalidateAuthorizeCodeSession(ctx, "sig-1") })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
			t.Fatalf("invalidate: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of 8 concurrent redemptions won, want 1", wins)
	}
	got, err = s.GetAuthorizeCodeSession(ctx, "sig-1", newSession())
	wantErr(t, "get redeemed code", err, fosite.ErrInvalidatedAuthorizeCode)
	if got == nil || got.GetID() != req.ID {
		t.Fatalf("a redeemed code must come with its request (fosite revokes its grant): %v", got)
	}

	// RevokeSubject: an unredeemed code of the user is void, a redeemed
	// one's grant is recorded as revoked (its client may get no refresh
	// token, so no refresh row would name the grant); others' stay.
	fresh, other := codeRequest(t, s, "user-1"), codeRequest(t, s, "user-2")
	wantErr(t, "create code", s.CreateAuthorizeCodeSession(ctx, "sig-2", fresh), nil)
	wantErr(t, "create code", s.CreateAuthorizeCodeSession(ctx, "sig-3", other), nil)
	start := time.Now()
	wantErr(t, "revoke subject", s.RevokeSubject(ctx, "user-1"), nil)
	_, err = s.GetAuthorizeCodeSession(ctx, "sig-2", newSession())
	wantErr(t, "code after RevokeSubject", err, fosite.ErrInvalidatedAuthorizeCode)
	_, err = s.GetAuthorizeCodeSession(ctx, "sig-3", newSession())
	wantErr(t, "other user's code", err, nil)
	if got := revokedGrants(t, s, start.Add(time.Minute)); !slices.Contains(got, req.ID) || slices.Contains(got, other.ID) {
		t.Fatalf("revoked grants %v: want the redeemed code's %s, not user-2's", got, req.ID)
	}
}

// testAuthSessions checks the auth_session storage of the challenge
// endpoint: round trip, the conditional replacement of a handle (one
// winner of concurrent ones, the old handle gone), deletion once, and
// RevokeSubject deleting a user's sessions.
func testAuthSessions(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	rec := &challenge.Record{Handle: hexHandle("a"), ClientID: "app", UserID: "user-1", JKT: "jkt-1",
		State: []byte(`{"kind":"login","done":["pwd"]}`), ExpiresAt: t0.Add(5 * time.Minute), CreatedAt: t0}
	wantErr(t, "create", s.CreateAuthSession(ctx, rec), nil)
	got, err := s.GetAuthSession(ctx, rec.Handle)
	wantErr(t, "get", err, nil)
	if got.Handle != rec.Handle || got.ClientID != "app" || got.UserID != "user-1" || got.JKT != "jkt-1" ||
		string(got.State) != string(rec.State) || !got.ExpiresAt.Equal(rec.ExpiresAt) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("got %+v, want %+v", got, rec)
	}
	_, err = s.GetAuthSession(ctx, hexHandle("unknown"))
	wantErr(t, "get unknown", err, apperr.ErrNotFound)

	// Concurrent replacements of one handle: one winner.
	var wg sync.WaitGroup
	oks := make([]bool, 8)
	for i := range oks {
		wg.Go(func() {
			next := *rec
			next.Handle = hexHandle("b" + string(rune('0'+i)))
			next.State = []byte(`{"kind":"login","done":["pwd","otp"]}`)
			ok, err := s.ReplaceAuthSession(ctx, rec.Handle, &next)
			if err != nil {
				t.Errorf("replace: %v", err)
			}
			oks[i] = ok
		})
	}
	wg.Wait()
	winner := slices.Index(oks, true)
	if winner < 0 || slices.Index(oks[winner+1:], true) >= 0 {
		t.Fatalf("replacements %v: want exactly one winner", oks)
	}
	_, err = s.GetAuthSession(ctx, rec.Handle)
	wantErr(t, "old handle", err, apperr.ErrNotFound)
	now := hexHandle("b" + string(rune('0'+winner)))
	got, err = s.GetAuthSession(ctx, now)
	wantErr(t, "new handle", err, nil)
	if string(got.State) != `{"kind":"login","done":["pwd","otp"]}` || got.UserID != "user-1" {
		t.Fatalf("replaced session %+v", got)
	}
	ok, err := s.DeleteAuthSession(ctx, now)
	wantErr(t, "delete", err, nil)
	if !ok {
		t.Fatal("delete reported no session")
	}
	if ok, _ := s.DeleteAuthSession(ctx, now); ok {
		t.Fatal("second delete reported a session")
	}

	// Revoking a grant deletes its step-up session.
	grantSession := &challenge.Record{Handle: hexHandle("g"), ClientID: "app", UserID: "user-3", GrantID: "grant-1", State: []byte(`{}`), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	wantErr(t, "create", s.CreateAuthSession(ctx, grantSession), nil)
	if got, err := s.GetAuthSession(ctx, grantSession.Handle); err != nil || got.GrantID != "grant-1" {
		t.Fatalf("grant session: %+v %v", got, err)
	}
	wantErr(t, "revoke other grant", s.RevokeRefreshToken(ctx, "grant-2"), nil)
	_, err = s.GetAuthSession(ctx, grantSession.Handle)
	wantErr(t, "session of another grant", err, nil)
	wantErr(t, "revoke grant", s.RevokeRefreshToken(ctx, "grant-1"), nil)
	_, err = s.GetAuthSession(ctx, grantSession.Handle)
	wantErr(t, "session of a revoked grant", err, apperr.ErrNotFound)

	// RevokeSubject deletes the user's sessions only.
	mine := &challenge.Record{Handle: hexHandle("c"), ClientID: "app", UserID: "user-1", State: []byte(`{}`), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	theirs := &challenge.Record{Handle: hexHandle("d"), ClientID: "app", UserID: "user-2", State: []byte(`{}`), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	wantErr(t, "create", s.CreateAuthSession(ctx, mine), nil)
	wantErr(t, "create", s.CreateAuthSession(ctx, theirs), nil)
	wantErr(t, "revoke subject", s.RevokeSubject(ctx, "user-1"), nil)
	_, err = s.GetAuthSession(ctx, mine.Handle)
	wantErr(t, "user-1's session after RevokeSubject", err, apperr.ErrNotFound)
	_, err = s.GetAuthSession(ctx, theirs.Handle)
	wantErr(t, "user-2's session", err, nil)
}

// hexHandle is a handle as the challenge endpoint stores one: the hex
// SHA-256 of a value (here seed).
func hexHandle(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}
