package oauth_test

import (
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestReplayedRefreshTokenRecordsOneRevocation: replaying a used refresh
// token revokes its grant (reuse detection) once; replaying it again
// writes nothing (fosite deletes the replayed token's row). The holder of
// a stale refresh token of a public client (no secret needed) cannot add
// an oauth2_revocations row, which every replica reads, per request.
func TestReplayedRefreshTokenRecordsOneRevocation(t *testing.T) {
	for name, dsn := range raceBackends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, servertest.Options{DSN: dsn(t)})
			e.user(t, "kim")
			pub, _ := e.client(t, clients.Spec{Name: "pub", Public: true, Audience: []string{api}})
			conf := e.conf(pub, "", oauth2.AuthStyleInParams)
			tok, err := conf.PasswordCredentialsToken(t.Context(), "kim", "purple otter lamp 42")
			if err != nil {
				t.Fatal(err)
			}
			next, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
			if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); err != nil {
				t.Fatal(err)
			}
			before, err := e.Store.RevocationsAfter(t.Context(), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			const replays = 20
			for range replays {
				if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); rfcCode(t, err) != "invalid_grant" {
					t.Fatal("a replayed refresh token was accepted")
				}
			}
			after, err := e.Store.RevocationsAfter(t.Context(), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(after) - len(before); got != 1 {
				t.Fatalf("%d replays of one used refresh token recorded %d revocations of its grant, want 1", replays, got)
			}
		})
	}
}
