package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// BenchmarkStorageCalls measures each storage call of the token endpoint's
// hot paths on its own, one at a time, on each backend (run with
// -benchmem): the client lookup of every token request, the reads and
// writes of a refresh grant (RotateRefreshToken includes the BeginTX and
// Commit around it, as fosite calls it), the user lookup and the throttle
// update of a password grant, and its token transaction
// (LoginTransaction). The refresh tokens belong to a user that
// exists, so that RotateRefreshToken takes its lock on MySQL. The mysql
// cases need $PORTCULLIS_TEST_MYSQL_DSN and skip without it.
func BenchmarkStorageCalls(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			if be.name == "mysql" {
				storagetest.RequireMySQL(b)
			}
			s, c := benchStore(b, be.dsn(b))
			ctx := b.Context()
			u := &identity.User{ID: uuid.NewString(), Username: "bench-user", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
				Roles: []string{"reader"}}
			if err := s.CreateUser(ctx, u); err != nil {
				b.Fatal(err)
			}
			newFamily := func(b *testing.B, sig string) *fosite.Request {
				req, _ := benchFamilyOf(b, s, c, u.ID, sig)
				return req
			}

			b.Run("GetClient", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.GetClient(ctx, c.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("GetRefreshTokenSession", func(b *testing.B) {
				sig := "get-" + uuid.NewString()
				newFamily(b, sig)
				for b.Loop() {
					if _, err := s.GetRefreshTokenSession(ctx, sig, &oauth2.JWTSession{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("CreateRefreshTokenSession", func(b *testing.B) {
				req := newFamily(b, "create-"+uuid.NewString())
				i := 0
				for b.Loop() {
					i++
					if err := s.CreateRefreshTokenSession(ctx, fmt.Sprintf("rt-%s-%d", req.ID, i), "", req); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("RotateRefreshToken", func(b *testing.B) {
				req := newFamily(b, "rot-"+uuid.NewString())
				sigs := make([]string, b.N)
				for i := range sigs {
					sigs[i] = fmt.Sprintf("rot-%s-%d", req.ID, i)
					if err := s.CreateRefreshTokenSession(ctx, sigs[i], "", req); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := rotateOnly(ctx, s, req.ID, sigs[i]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("LoginTransaction", func(b *testing.B) {
				// A password grant's token transaction: the write to the
				// user's row (LockUser) and the new refresh token.
				req := newFamily(b, "login-"+uuid.NewString())
				i := 0
				for b.Loop() {
					i++
					tx, err := s.BeginTX(ctx)
					if err == nil {
						_, err = s.LockUser(tx, u.ID)
					}
					if err == nil {
						err = s.CreateRefreshTokenSession(tx, fmt.Sprintf("login-%s-%d", req.ID, i), "", req)
					}
					if err == nil {
						err = s.Commit(tx)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("GetUserByUsername", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.GetUserByUsername(ctx, u.Username); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("UpdateThrottles", func(b *testing.B) {
				// A password grant's reservation: the account's, the
				// network's and the trusted pair's counters, each counted
				// once more.
				account := "acct:" + u.ID
				keys := []string{account, "net:127.0.0.0/24", "trust:" + u.ID + "/127.0.0.1"}
				count := func(ts []*identity.Throttle) error {
					now := time.Now()
					for _, t := range ts {
						t.Failures++
						t.LastAt, t.Expires = now, now.Add(time.Hour)
					}
					return nil
				}
				for b.Loop() {
					if err := s.UpdateThrottles(ctx, account, keys, count); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// rotateOnly is fosite's rotation of one refresh token without the new
// tokens: BeginTX, RotateRefreshToken, Commit.
func rotateOnly(ctx context.Context, s *storage.Store, requestID, sig string) error {
	tx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err := s.RotateRefreshToken(tx, requestID, sig); err != nil {
		_ = s.Rollback(tx)
		return err
	}
	return s.Commit(tx)
}
