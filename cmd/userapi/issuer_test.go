package main

import (
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
)

// newFakeIssuer starts an issuer (RFC 8414 metadata and JWKS) with one
// ES256 key, kid "k1".
func newFakeIssuer(tb testing.TB) *testkit.Issuer {
	tb.Helper()
	fi := testkit.NewIssuer(tb)
	fi.AddKeyWithID(tb, "k1", jose.ES256)
	return fi
}

// userClaims returns valid user-token claims of fi for audience.
func userClaims(fi *testkit.Issuer, audience string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": fi.URL(), "sub": "user-42", "aud": []string{audience},
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "jti-1", "client_id": "cli-1", "scope": "openid profile",
		"preferred_username": "alice", "roles": []string{"admin", "user"},
	}
}

// mint signs claims as an ES256 RFC 9068 access token with kid, by key
// (default: fi's key of that kid).
func mint(tb testing.TB, fi *testkit.Issuer, claims map[string]any, kid string, key any) string {
	tb.Helper()
	return fi.Sign(tb, testkit.Token{KeyID: kid, Algorithm: jose.ES256, Key: key, Claims: claims})
}
