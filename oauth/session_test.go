package oauth_test

import (
	"testing"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestUserID: the one rule for "is this a user's token" fails closed: only
// a session whose subject is its client's ID and that names no user is a
// client's own.
func TestUserID(t *testing.T) {
	client := &oauth.Client{Client: &clients.Client{ID: "c1"}}
	for _, tc := range []struct {
		name     string
		sub      string
		username any
		wantID   string
		wantUser bool
	}{
		{"client_credentials", "c1", nil, "", false},
		{"password grant", "u1", "alice", "u1", true},
		{"user whose ID equals the client's", "c1", "alice", "c1", true},
		{"subject not the client, no username", "u1", nil, "u1", true},
		{"empty username claim", "u1", "", "u1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := oauth.NewSession()
			s.Subject, s.JWTClaims.Subject = tc.sub, tc.sub
			if tc.username != nil {
				s.JWTClaims.Extra["preferred_username"] = tc.username
			}
			ar := fosite.NewAccessRequest(s)
			ar.Client = client
			id, isUser := oauth.UserID(ar)
			if id != tc.wantID || isUser != tc.wantUser {
				t.Errorf("UserID = %q, %v; want %q, %v", id, isUser, tc.wantID, tc.wantUser)
			}
		})
	}
}
