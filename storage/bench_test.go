package storage_test

import (
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// benchBackends are the databases every storage benchmark runs on; the
// MySQL cases need $PORTCULLIS_TEST_MYSQL_DSN.
var benchBackends = []struct {
	name string
	dsn  func(testing.TB) string
}{
	{"sqlite", storagetest.SQLiteDSN},
	{"mysql", storagetest.MySQLDSN},
}

// BenchmarkRefreshRotation measures one refresh grant's storage work, as
// fosite performs it: BeginTX, RotateRefreshToken, CreateRefreshTokenSession,
// Commit (access tokens are not stored), preceded by the GetRefreshTokenSession
// fosite does outside the transaction. "serial" rotates one chain; "parallel"
// rotates GOMAXPROCS×4 independent chains at once (throughput under load).
// The MySQL cases need $PORTCULLIS_TEST_MYSQL_DSN.
func BenchmarkRefreshRotation(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name+"/serial", func(b *testing.B) {
			s, c := benchStore(b, be.dsn(b))
			req, sig := benchFamily(b, s, c)
			var n atomic.Int64
			b.ResetTimer()
			for b.Loop() {
				sig = rotate(b, s, req, sig, &n)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refresh/s")
		})
		b.Run(be.name+"/parallel", func(b *testing.B) {
			s, c := benchStore(b, be.dsn(b))
			var n atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, sig := benchFamily(b, s, c)
				for pb.Next() {
					sig = rotate(b, s, req, sig, &n)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refresh/s")
		})
	}
}

func benchStore(b *testing.B, dsn string) (*storage.Store, *clients.Client) {
	s := storagetest.OpenDSN(b, dsn)
	c := &clients.Client{ID: uuid.NewString(), Name: "bench", AuthMethod: clients.AuthNone,
		GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken}, Scopes: []string{"read"}}
	if err := s.CreateClient(b.Context(), c); err != nil {
		b.Fatal(err)
	}
	return s, c
}

// benchFamily stores a first refresh token and returns its request and
// signature.
func benchFamily(b *testing.B, s *storage.Store, c *clients.Client) (*fosite.Request, string) {
	return benchFamilyOf(b, s, c, "user", uuid.NewString())
}

// benchFamilyOf stores a first refresh token with signature sig, issued to
// subject, and returns its request and signature.
func benchFamilyOf(b *testing.B, s *storage.Store, c *clients.Client, subject, sig string) (*fosite.Request, string) {
	sess := &oauth2.JWTSession{
		JWTClaims: &jwt.JWTClaims{Subject: subject, Extra: map[string]any{"client_id": c.ID, "roles": []string{"reader"}}},
		JWTHeader: &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}},
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AccessToken:  time.Now().Add(15 * time.Minute),
			fosite.RefreshToken: time.Now().Add(720 * time.Hour),
		},
		Subject: subject,
	}
	req := fosite.NewRequest()
	req.ID, req.Client, req.Session = uuid.NewString(), &oauth.Client{Client: c}, sess
	req.GrantedScope, req.GrantedAudience = fosite.Arguments{"read"}, fosite.Arguments{"https://api.example.test"}
	req.Form = url.Values{"grant_type": {"refresh_token"}}
	if err := s.CreateRefreshTokenSession(b.Context(), sig, "", req); err != nil {
		b.Fatal(err)
	}
	return req, sig
}

func rotate(b *testing.B, s *storage.Store, req *fosite.Request, sig string, n *atomic.Int64) string {
	ctx := b.Context()
	id := n.Add(1)
	at, rt := fmt.Sprintf("at-%s-%d", req.ID, id), fmt.Sprintf("rt-%s-%d", req.ID, id)
	// fosite reads the token before it begins the transaction.
	if _, err := s.GetRefreshTokenSession(ctx, sig, &oauth2.JWTSession{}); err != nil {
		b.Fatal(err)
	}
	tx, err := s.BeginTX(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return s.RotateRefreshToken(tx, req.ID, sig) },
		func() error { return s.CreateRefreshTokenSession(tx, rt, at, req) },
	} {
		if err := step(); err != nil {
			_ = s.Rollback(tx)
			b.Fatal(err)
		}
	}
	if err := s.Commit(tx); err != nil {
		b.Fatal(err)
	}
	return rt
}
