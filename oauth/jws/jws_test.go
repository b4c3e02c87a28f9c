package jws_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/jws"
)

// signRaw signs a raw JSON header and payload with ES256, for headers
// go-jose would not produce.
func signRaw(t *testing.T, priv *ecdsa.PrivateKey, header, payload string) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestParse(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const payload = `{"sub":"alice"}`
	sign := func(header string) string { return signRaw(t, priv, header, payload) }
	valid := sign(`{"alg":"ES256","kid":"k1","typ":"at+jwt"}`)
	parts := strings.Split(valid, ".")
	jsonOf := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	es256 := []jose.SignatureAlgorithm{jose.ES256}
	accessToken := []string{"at+jwt", "application/at+jwt"}

	tests := []struct {
		name  string
		token string
		algs  []jose.SignatureAlgorithm
		types []string
		want  error // nil: parsed
	}{
		{"compact", valid, es256, accessToken, nil},
		{"typ compared without regard to case", sign(`{"alg":"ES256","kid":"k1","typ":"AT+JWT"}`), es256, accessToken, nil},
		{"typ application/ form when listed", sign(`{"alg":"ES256","kid":"k1","typ":"application/at+jwt"}`), es256, accessToken, nil},
		{"typ application/ form when not listed", sign(`{"alg":"ES256","kid":"k1","typ":"application/at+jwt"}`), es256, []string{"at+jwt"}, jws.ErrType},
		{"RFC 9449 dpop+jwt", sign(`{"alg":"ES256","typ":"dpop+jwt"}`), es256, []string{"dpop+jwt"}, nil},
		{"dpop+jwt is not an access token", sign(`{"alg":"ES256","kid":"k1","typ":"dpop+jwt"}`), es256, accessToken, jws.ErrType},
		{"typ JWT", sign(`{"alg":"ES256","kid":"k1","typ":"JWT"}`), es256, accessToken, jws.ErrType},
		{"typ missing", sign(`{"alg":"ES256","kid":"k1"}`), es256, accessToken, jws.ErrType},
		{"typ not a string", sign(`{"alg":"ES256","kid":"k1","typ":["at+jwt"]}`), es256, accessToken, jws.ErrType},
		{"no types: every token refused", valid, es256, nil, jws.ErrType},

		{"RFC 7515 §7.2.2 flattened JSON", jsonOf(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]}),
			es256, accessToken, jws.ErrNotCompact},
		{"RFC 7515 §7.2.1 general JSON", jsonOf(map[string]any{"payload": parts[1],
			"signatures": []map[string]string{{"protected": parts[0], "signature": parts[2]}}}), es256, accessToken, jws.ErrNotCompact},
		{"whitespace", parts[0] + ".\n" + parts[1] + "." + parts[2], es256, accessToken, jws.ErrNotCompact},
		{"padding", valid + "=", es256, accessToken, jws.ErrNotCompact},
		{"empty signature", parts[0] + "." + parts[1] + ".", es256, accessToken, jws.ErrNotCompact},
		{"five segments (JWE)", valid + ".AA.BB", es256, accessToken, jws.ErrNotCompact},
		{"empty", "", es256, accessToken, jws.ErrNotCompact},

		{"empty allow-list", valid, nil, accessToken, jws.ErrAlgorithm},
		{"alg not in the allow-list", valid, []jose.SignatureAlgorithm{jose.RS256, jose.EdDSA}, accessToken, jws.ErrAlgorithm},
		{"alg none", sign(`{"alg":"none","kid":"k1","typ":"at+jwt"}`), es256, accessToken, jws.ErrAlgorithm},
		{"alg HS256", sign(`{"alg":"HS256","kid":"k1","typ":"at+jwt"}`), es256, accessToken, jws.ErrAlgorithm},

		{"crit", sign(`{"alg":"ES256","kid":"k1","typ":"at+jwt","crit":["exp"],"exp":1}`), es256, accessToken, jws.ErrCritical},
		{"b64", sign(`{"alg":"ES256","kid":"k1","typ":"at+jwt","b64":true}`), es256, accessToken, jws.ErrCritical},
		{"duplicate header member", sign(`{"alg":"ES256","kid":"k1","typ":"at+jwt","typ":"JWT"}`), es256, accessToken, jws.ErrMalformed},
		{"header not base64url JSON", "AAAA." + parts[1] + "." + parts[2], es256, accessToken, jws.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obj, hdr, err := jws.Parse(tt.token, tt.algs, tt.types...)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || obj != nil {
					t.Fatalf("Parse = %v, %v; want %v", obj, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if hdr.Algorithm != "ES256" || len(obj.Signatures) != 1 {
				t.Errorf("header = %+v", hdr)
			}
			got, err := obj.Verify(&priv.PublicKey)
			if err != nil || string(got) != payload {
				t.Errorf("Verify = %q, %v", got, err)
			}
		})
	}
}

func TestDecodeObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		members int
		dup     bool // error wraps ErrDuplicateMember
		wantErr bool
	}{
		{`{"a":1,"b":{"a":1,"a":2}}`, 2, false, false}, // nested duplicates are not checked
		{` {"a":1} `, 1, false, false},
		{`{"a":1,"a":1}`, 0, true, true},
		{`{"a":1,"\u0061":2}`, 0, true, true}, // compared after unescaping
		{`{"a":1,"A":2}`, 2, false, false},    // and exactly
		{`["a"]`, 0, false, true},
		{`{"a":1}{}`, 0, false, true},
		{`{"a":1`, 0, false, true},
		{``, 0, false, true},
	}
	for _, tt := range tests {
		m, err := jws.DecodeObject([]byte(tt.in))
		if (err != nil) != tt.wantErr || errors.Is(err, jws.ErrDuplicateMember) != tt.dup || len(m) != tt.members {
			t.Errorf("DecodeObject(%s) = %v, %v", tt.in, m, err)
		}
	}
}
