package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

const (
	testAudience = "https://api.example.test"
	testUser     = "alice"
	testPassword = "purple otter lamp 42"
)

// authStyles are every golang.org/x/oauth2 AuthStyle.
var authStyles = []struct {
	name  string
	style oauth2.AuthStyle
}{
	{"AuthStyleAutoDetect", oauth2.AuthStyleAutoDetect},
	{"AuthStyleInHeader", oauth2.AuthStyleInHeader},
	{"AuthStyleInParams", oauth2.AuthStyleInParams},
}

// TestGoOAuth2 drives the token endpoint with golang.org/x/oauth2 as users
// do: the password grant, client_credentials (clientcredentials.Config)
// and refresh through a TokenSource, with every AuthStyle, for a client
// registered without an auth method (which accepts both secret methods); a
// public client with the styles that send no secret.
func TestGoOAuth2(t *testing.T) {
	s := portcullis.Serve(t)
	s.CreateUser(t, testUser, testPassword)
	conf := s.CreateClient(t, "--name", "go-confidential", "--grant-type", "password", "--grant-type", "refresh_token",
		"--grant-type", "client_credentials", "--scope", "read", "--audience", testAudience)
	pub := s.CreateClient(t, "--name", "go-public", "--public", "--grant-type", "password", "--grant-type", "refresh_token",
		"--audience", testAudience)
	endpoint := oauth2.Endpoint{TokenURL: s.URL + "/oauth2/token"}

	for _, as := range authStyles {
		t.Run("password/"+as.name, func(t *testing.T) {
			ep := endpoint
			ep.AuthStyle = as.style
			cfg := &oauth2.Config{ClientID: conf.ClientID, ClientSecret: conf.ClientSecret, Endpoint: ep}
			tok, err := cfg.PasswordCredentialsToken(t.Context(), testUser, testPassword)
			if err != nil {
				t.Fatalf("PasswordCredentialsToken: %v", err)
			}
			checkToken(t, tok, conf.ClientID)
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token")
			}

			// Refresh through a TokenSource, as an http.Client from
			// cfg.Client would once the access token expires.
			old := *tok
			tok.Expiry = time.Now().Add(-time.Minute)
			next, err := cfg.TokenSource(t.Context(), tok).Token()
			if err != nil {
				t.Fatalf("TokenSource refresh: %v", err)
			}
			checkToken(t, next, conf.ClientID)
			if next.RefreshToken == "" || next.RefreshToken == old.RefreshToken || next.AccessToken == old.AccessToken {
				t.Fatal("refresh did not rotate the tokens")
			}
			// The rotated-out refresh token is dead (RFC 9700 §4.14.2).
			old.Expiry = time.Now().Add(-time.Minute)
			if _, err := cfg.TokenSource(t.Context(), &old).Token(); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("reusing the old refresh token: %v, want invalid_grant", err)
			}
		})
		t.Run("client_credentials/"+as.name, func(t *testing.T) {
			cfg := &clientcredentials.Config{ClientID: conf.ClientID, ClientSecret: conf.ClientSecret, TokenURL: endpoint.TokenURL,
				Scopes: []string{"read"}, AuthStyle: as.style}
			tok, err := cfg.Token(t.Context())
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			checkToken(t, tok, conf.ClientID)
			if _, claims := proctest.DecodeJWT(t, tok.AccessToken); claims["sub"] != conf.ClientID || claims["scope"] != "read" {
				t.Errorf("claims %v", claims)
			}
		})
	}
	// A public client has no secret: x/oauth2 sends client_id in the body
	// (InParams), and AutoDetect falls back to that when Basic fails.
	for _, as := range []struct {
		name  string
		style oauth2.AuthStyle
	}{{"AuthStyleAutoDetect", oauth2.AuthStyleAutoDetect}, {"AuthStyleInParams", oauth2.AuthStyleInParams}} {
		t.Run("public/password+refresh/"+as.name, func(t *testing.T) {
			ep := endpoint
			ep.AuthStyle = as.style
			cfg := &oauth2.Config{ClientID: pub.ClientID, Endpoint: ep}
			tok, err := cfg.PasswordCredentialsToken(t.Context(), testUser, testPassword)
			if err != nil {
				t.Fatalf("PasswordCredentialsToken: %v", err)
			}
			checkToken(t, tok, pub.ClientID)
			tok.Expiry = time.Now().Add(-time.Minute)
			next, err := cfg.TokenSource(t.Context(), tok).Token()
			if err != nil {
				t.Fatalf("TokenSource refresh: %v", err)
			}
			checkToken(t, next, pub.ClientID)
		})
	}
}

// checkToken checks an x/oauth2 token: Bearer, an expiry in the future, and
// an RFC 9068 access token for clientID.
func checkToken(t *testing.T, tok *oauth2.Token, clientID string) {
	t.Helper()
	if !strings.EqualFold(tok.TokenType, "Bearer") || !tok.Valid() || time.Until(tok.Expiry) < time.Minute {
		t.Fatalf("token type %q, expiry %v", tok.TokenType, tok.Expiry)
	}
	hdr, claims := proctest.DecodeJWT(t, tok.AccessToken)
	if hdr["typ"] != "at+jwt" || claims["client_id"] != clientID {
		t.Fatalf("header %v, claims %v", hdr, claims)
	}
}

// isOAuthError reports whether err is an x/oauth2 RetrieveError with the
// RFC 6749 §5.2 error code.
func isOAuthError(err error, code string) bool {
	re, ok := err.(*oauth2.RetrieveError)
	return ok && re.ErrorCode == code
}

// issueAndVerify issues client_credentials tokens for at least 2.5 s and
// until at least 10 were issued in the second half of a second (where a
// rounded iat or nbf would lie ahead of the clock), calling verify on each
// at once. It fails the test on the first refusal.
func issueAndVerify(t *testing.T, s *proctest.Server, c proctest.Client, verify func(token string) error) {
	t.Helper()
	start := time.Now()
	n, late := 0, 0
	seconds := map[int64]bool{}
	for time.Since(start) < 2500*time.Millisecond || late < 10 {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("only %d of %d tokens were issued in a second's second half", late, n)
		}
		tok := s.ClientCredentialsToken(t, c, "")
		now := time.Now()
		if err := verify(tok.AccessToken); err != nil {
			_, claims := proctest.DecodeJWT(t, tok.AccessToken)
			t.Fatalf("token %d, verified at %s (iat %v, nbf %v): %v", n, now.Format(time.RFC3339Nano), claims["iat"], claims["nbf"], err)
		}
		n++
		seconds[now.Unix()] = true
		if now.Nanosecond() >= 500_000_000 {
			late++
		}
	}
	if len(seconds) < 3 {
		t.Fatalf("tokens spanned %d seconds", len(seconds))
	}
	t.Logf("verified %d tokens over %d seconds, %d in a second's second half", n, len(seconds), late)
}

// TestJWXZeroSkew verifies tokens with github.com/lestrrat-go/jwx/v3 at
// zero clock skew (its default) the moment they are issued, across second
// boundaries: iat and nbf are never stamped after the clock.
func TestJWXZeroSkew(t *testing.T) {
	s := portcullis.Serve(t)
	c := s.CreateClient(t, "--name", "jwx", "--grant-type", "client_credentials", "--audience", testAudience)
	set, err := jwk.Fetch(t.Context(), s.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("jwk.Fetch: %v", err)
	}
	issueAndVerify(t, s, c, func(token string) error {
		_, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithAcceptableSkew(0),
			jwt.WithIssuer(s.URL), jwt.WithAudience(testAudience))
		return err
	})
	tok := s.ClientCredentialsToken(t, c, "")
	if _, err := jwt.Parse([]byte(tok.AccessToken), jwt.WithKeySet(set), jwt.WithAudience("https://elsewhere.example")); err == nil {
		t.Error("jwx accepted a token for another audience")
	}
}

// TestGoOIDC shows coreos/go-oidc against Portcullis, which is an OAuth 2.0
// authorization server, not an OpenID Provider:
//   - oidc.NewProvider (OpenID Connect Discovery) fails with the 404 of
//     /.well-known/openid-configuration, not with a misleading error later;
//   - an oidc.ProviderConfig decoded from the RFC 8414 metadata, with the
//     verifier at its default oidc.Config (only ClientID, the audience),
//     verifies RS256 tokens, the algorithm go-oidc assumes and RFC 9068
//     §2.1 requires servers to support, whether the server signs with
//     RS256 or the client is registered for RS256 tokens;
//   - for ES256 tokens go-oidc must be told the algorithm: it is the
//     registered "alg" of the keys in jwks_uri (RFC 7517 §4.4).
func TestGoOIDC(t *testing.T) {
	t.Run("NewProvider: no OpenID discovery document (404)", func(t *testing.T) {
		s := portcullis.Serve(t)
		_, err := oidc.NewProvider(t.Context(), s.URL)
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("NewProvider = %v, want the 404 of /.well-known/openid-configuration", err)
		}
	})
	t.Run("RS256: ProviderConfig from RFC 8414 metadata, default verifier", func(t *testing.T) {
		s := portcullis.Serve(t, "PORTCULLIS_KEYS_ALGORITHM=RS256")
		c := s.CreateClient(t, "--name", "oidc-rs", "--grant-type", "client_credentials", "--audience", testAudience)
		pc := rfc8414ProviderConfig(t, s)
		v := pc.NewProvider(t.Context()).Verifier(&oidc.Config{ClientID: testAudience})
		issueAndVerify(t, s, c, func(token string) error {
			_, err := v.Verify(t.Context(), token)
			return err
		})
		other := pc.NewProvider(t.Context()).Verifier(&oidc.Config{ClientID: "https://elsewhere.example"})
		if _, err := other.Verify(t.Context(), s.ClientCredentialsToken(t, c, "").AccessToken); err == nil {
			t.Error("go-oidc accepted a token for another audience")
		}
	})
	t.Run("RS256 per client on an ES256 server: ProviderConfig from RFC 8414 metadata, default verifier", func(t *testing.T) {
		s := portcullis.Serve(t)
		c := s.CreateClient(t, "--name", "oidc-rs-client", "--grant-type", "client_credentials", "--audience", testAudience,
			"--access-token-signed-response-alg", "RS256")
		v := rfc8414ProviderConfig(t, s).NewProvider(t.Context()).Verifier(&oidc.Config{ClientID: testAudience})
		issueAndVerify(t, s, c, func(token string) error {
			_, err := v.Verify(t.Context(), token)
			return err
		})
	})
	t.Run("ES256: ProviderConfig with the JWKS algorithms, default verifier", func(t *testing.T) {
		s := portcullis.Serve(t)
		c := s.CreateClient(t, "--name", "oidc-es", "--grant-type", "client_credentials", "--audience", testAudience)
		pc := rfc8414ProviderConfig(t, s)
		if pc.Algorithms != nil {
			t.Fatalf("RFC 8414 metadata claims ID token algorithms: %v", pc.Algorithms)
		}
		// Without them go-oidc assumes RS256 and refuses ES256.
		bare := pc.NewProvider(t.Context()).Verifier(&oidc.Config{ClientID: testAudience})
		if _, err := bare.Verify(t.Context(), s.ClientCredentialsToken(t, c, "").AccessToken); err == nil ||
			!strings.Contains(err.Error(), "RS256") {
			t.Fatalf("go-oidc without algorithms: %v, want its RS256 default to refuse ES256", err)
		}
		pc.Algorithms = jwksAlgorithms(t, pc.JWKSURL)
		v := pc.NewProvider(t.Context()).Verifier(&oidc.Config{ClientID: testAudience})
		issueAndVerify(t, s, c, func(token string) error {
			_, err := v.Verify(t.Context(), token)
			return err
		})
	})
}

// rfc8414ProviderConfig decodes the server's RFC 8414 metadata into an
// oidc.ProviderConfig, whose JSON names are the shared registered ones.
func rfc8414ProviderConfig(t *testing.T, s *proctest.Server) *oidc.ProviderConfig {
	t.Helper()
	resp, err := http.Get(s.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pc oidc.ProviderConfig
	if err := json.NewDecoder(resp.Body).Decode(&pc); err != nil {
		t.Fatal(err)
	}
	if pc.IssuerURL != s.URL || pc.JWKSURL == "" || pc.TokenURL == "" {
		t.Fatalf("provider config from metadata: %+v", pc)
	}
	return &pc
}

// jwksAlgorithms returns the distinct "alg" members of the keys at uri.
func jwksAlgorithms(t *testing.T, uri string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	set, err := jwk.Fetch(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	var algs []string
	seen := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		a, ok := k.Algorithm()
		if !ok {
			t.Fatalf("JWK %d has no alg", i)
		}
		if !seen[a.String()] {
			seen[a.String()] = true
			algs = append(algs, a.String())
		}
	}
	return algs
}
