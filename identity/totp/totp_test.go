package totp_test

import (
	"bytes"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/portcullis-auth/portcullis/identity/totp"
	"github.com/portcullis-auth/portcullis/internal/seal"
)

// rfcSecret is the RFC 6238 SHA-1 seed "12345678901234567890" in base32.
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// code returns the 6-digit SHA-1 code of secret at t as pquerna/otp's
// totp package computes it: an oracle independent of Verify.
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := pqtotp.GenerateCodeCustom(secret, at, pqtotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerate(t *testing.T) {
	tests := []struct{ issuer, account string }{
		{"Portcullis", "alice"},
		{"Acme & Co+ Ünïcode/?#=%", "alice.b+1@example.com"},
		{"Two  Spaces", "bob_smith-2"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		k, err := totp.Generate(tc.issuer, tc.account)
		if err != nil {
			t.Fatalf("Generate(%q, %q): %v", tc.issuer, tc.account, err)
		}
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(k.Secret())
		if err != nil || len(raw) != 20 || strings.Contains(k.Secret(), "=") {
			t.Fatalf("Secret %q: %d bytes, %v; want 20 bytes of unpadded base32", k.Secret(), len(raw), err)
		}
		if seen[k.Secret()] {
			t.Fatal("two keys have the same secret")
		}
		seen[k.Secret()] = true

		// The URI round-trips through pquerna/otp, as apps read it.
		pk, err := otp.NewKeyFromURL(k.URI())
		if err != nil {
			t.Fatalf("NewKeyFromURL(%s): %v", k.URI(), err)
		}
		if pk.Type() != "totp" || pk.Issuer() != tc.issuer || pk.AccountName() != tc.account || pk.Secret() != k.Secret() ||
			pk.Algorithm() != otp.AlgorithmSHA1 || pk.Digits() != otp.DigitsSix || pk.Period() != 30 {
			t.Errorf("URI %s reads back as type %s, issuer %q, account %q, secret match %v, %v, %d digits, period %d",
				k.URI(), pk.Type(), pk.Issuer(), pk.AccountName(), pk.Secret() == k.Secret(), pk.Algorithm(), pk.Digits(), pk.Period())
		}
		// And through net/url, exactly: the label is ISSUER:ACCOUNT, the
		// query has exactly the five parameters, spaces are %20.
		u, err := url.Parse(k.URI())
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/"+tc.issuer+":"+tc.account || len(q) != 5 ||
			q.Get("secret") != k.Secret() || q.Get("issuer") != tc.issuer || q.Get("algorithm") != "SHA1" ||
			q.Get("digits") != "6" || q.Get("period") != "30" {
			t.Errorf("URI %s parses as %s://%s%s ? %v", k.URI(), u.Scheme, u.Host, u.Path, q)
		}
		if strings.Contains(k.URI(), "+") || strings.Contains(k.URI(), " ") {
			t.Errorf("URI %s holds a raw space or plus sign", k.URI())
		}
		// The key's own codes verify.
		now := time.Now()
		if _, ok := totp.Verify(k.Secret(), code(t, k.Secret(), now), now, 0); !ok {
			t.Error("the current code of a new key does not verify")
		}
	}
	for _, bad := range [][2]string{{"", "alice"}, {"Portcullis", ""}, {"Port:cullis", "alice"}, {"Portcullis", "al:ice"}} {
		if _, err := totp.Generate(bad[0], bad[1]); !errors.Is(err, totp.ErrInvalidName) {
			t.Errorf("Generate(%q, %q) = %v, want ErrInvalidName", bad[0], bad[1], err)
		}
	}
}

func TestPNG(t *testing.T) {
	k, err := totp.Generate("Portcullis", "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{64, 256, 1024} {
		b, err := k.PNG(size)
		if err != nil {
			t.Fatalf("PNG(%d): %v", size, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("PNG(%d) does not decode: %v", size, err)
		}
		if r := img.Bounds(); r.Dx() != size || r.Dy() != size {
			t.Errorf("PNG(%d) is %dx%d", size, r.Dx(), r.Dy())
		}
	}
	for _, size := range []int{-1, 0, 63, 1025, 1 << 20} {
		if _, err := k.PNG(size); !errors.Is(err, totp.ErrImageSize) {
			t.Errorf("PNG(%d) = %v, want ErrImageSize", size, err)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_750_000_015, 0) // mid-step
	cur := totp.StepAt(now)
	at := func(steps int64) time.Time { return now.Add(time.Duration(steps) * totp.Period) }
	tests := []struct {
		name     string
		secret   string
		code     string
		lastUsed int64
		step     int64
		ok       bool
	}{
		{"current step", rfcSecret, code(t, rfcSecret, now), 0, cur, true},
		{"one step back", rfcSecret, code(t, rfcSecret, at(-1)), 0, cur - 1, true},
		{"one step ahead", rfcSecret, code(t, rfcSecret, at(1)), 0, cur + 1, true},
		{"two steps back", rfcSecret, code(t, rfcSecret, at(-2)), 0, 0, false},
		{"two steps ahead", rfcSecret, code(t, rfcSecret, at(2)), 0, 0, false},
		{"replay of the last used step", rfcSecret, code(t, rfcSecret, now), cur, 0, false},
		{"earlier step than the last used", rfcSecret, code(t, rfcSecret, at(-1)), cur, 0, false},
		{"later step than the last used", rfcSecret, code(t, rfcSecret, at(1)), cur, cur + 1, true},
		{"lower-case secret", strings.ToLower(rfcSecret), code(t, rfcSecret, now), 0, cur, true},
		{"padded secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", code(t, rfcSecret, now), 0, cur, true},
		{"another secret", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", code(t, rfcSecret, now), 0, 0, false},
		{"secret not base32", "not base32!", code(t, rfcSecret, now), 0, 0, false},
		{"empty secret", "", code(t, rfcSecret, now), 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step, ok := totp.Verify(tc.secret, tc.code, now, tc.lastUsed)
			if ok != tc.ok || step != tc.step {
				t.Errorf("Verify = %d, %v; want %d, %v", step, ok, tc.step, tc.ok)
			}
		})
	}
}

// TestVerifyMalformed: only exactly six ASCII digits are a code; nothing
// around or instead of the right digits makes one.
func TestVerifyMalformed(t *testing.T) {
	now := time.Unix(1_750_000_015, 0)
	good := code(t, rfcSecret, now)
	if _, ok := totp.Verify(rfcSecret, good, now, 0); !ok {
		t.Fatal("the right code does not verify")
	}
	fullWidth := strings.Map(func(r rune) rune { return r - '0' + '０' }, good)
	arabicIndic := strings.Map(func(r rune) rune { return r - '0' + '٠' }, good)
	for _, bad := range []string{
		"", good[:5], good + "0", "0" + good, good[:5] + "a", " " + good, good + " ", " " + good[1:],
		good[:5] + " ", "\t" + good[1:], good[:3] + "-" + good[3:], "+" + good[1:], "-" + good[1:],
		fullWidth, arabicIndic, good[:5] + "\x00", "12345a", "12345", "1234567", "１２３４５６",
	} {
		if step, ok := totp.Verify(rfcSecret, bad, now, 0); ok {
			t.Errorf("Verify(%q) = %d, true; want refused", bad, step)
		}
	}
}

func TestSealSecret(t *testing.T) {
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	s, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	wrap, sealed, err := totp.SealSecret(s, "factor-1", rfcSecret)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != s.PrimaryID() || bytes.Contains(sealed, []byte(rfcSecret)) {
		t.Fatalf("SealSecret = %s, %x", wrap, sealed)
	}
	got, err := totp.OpenSecret(s, "factor-1", wrap, sealed)
	if err != nil || got != rfcSecret {
		t.Fatalf("OpenSecret = %q, %v", got, err)
	}
	if _, err := totp.OpenSecret(s, "factor-2", wrap, sealed); !errors.Is(err, seal.ErrWrongKey) {
		t.Errorf("opened as another factor's secret: %v, want ErrWrongKey", err)
	}
	if _, err := s.Open(seal.SigningKey, "factor-1", wrap, sealed); !errors.Is(err, seal.ErrWrongKey) {
		t.Errorf("a TOTP secret opened as a signing key: %v, want ErrWrongKey", err)
	}
	kw, ks, err := s.Seal(seal.SigningKey, "factor-1", []byte(rfcSecret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := totp.OpenSecret(s, "factor-1", kw, ks); !errors.Is(err, seal.ErrWrongKey) {
		t.Errorf("a signing key opened as a TOTP secret: %v, want ErrWrongKey", err)
	}
	other, _ := seal.New(bytes.Repeat([]byte{8}, seal.KeySize))
	if _, err := totp.OpenSecret(other, "factor-1", wrap, sealed); !errors.Is(err, seal.ErrWrongKey) || strings.Contains(err.Error(), rfcSecret) {
		t.Errorf("OpenSecret with another secrets key: %v, want ErrWrongKey", err)
	}
}

var recoveryFormat = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)

func TestRecoveryCodes(t *testing.T) {
	plain, hashes, err := totp.NewRecoveryCodes(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 10 || len(hashes) != 10 {
		t.Fatalf("%d codes, %d hashes; want 10 each", len(plain), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range plain {
		if !recoveryFormat.MatchString(c) {
			t.Errorf("code %q is not xxxxx-xxxxx-xxxxx in lower-case Crockford base32", c)
		}
		if seen[c] {
			t.Errorf("code %q twice", c)
		}
		seen[c] = true
		if h, ok := totp.HashRecoveryCode(c); !ok || len(hashes[i]) != 32 || !bytes.Equal(h, hashes[i]) {
			t.Errorf("hash %d is %x, HashRecoveryCode gives %x, %v", i, hashes[i], h, ok)
		}
		if idx, ok := totp.MatchRecoveryCode(c, hashes); !ok || idx != i {
			t.Errorf("MatchRecoveryCode(code %d) = %d, %v", i, idx, ok)
		}
	}
	// What a user may type for a code: any case, spaces or no dashes, and
	// the letters read as the digits they look like.
	c := "0a1bc-defgh-jk1mn"
	h, _ := totp.HashRecoveryCode(c)
	hs := [][]byte{hashes[0], h, hashes[1]}
	for _, typed := range []string{c, "0A1BC-DEFGH-JK1MN", "0a1bcdefghjk1mn", " 0a1bc defgh jk1mn ", "oa1bc-defgh-jkimn", "Oa1bc-defgh-jkLmn", "0a1b-cdefg-hjk1mn", "0a1bc\tdefgh\tjk1mn"} {
		if idx, ok := totp.MatchRecoveryCode(typed, hs); !ok || idx != 1 {
			t.Errorf("MatchRecoveryCode(%q) = %d, %v; want 1, true", typed, idx, ok)
		}
	}
	for _, bad := range []string{
		"", "0a1bc-defgh-jk1m", "0a1bc-defgh-jk1mnp", "0a1bc-defgh-jk1mu", "0a1bc-defgh-jk1m!", "0a1bc_defgh_jk1mn",
		"０a1bc-defgh-jk1mn", "0a1bc-defgh-jk1mn" + strings.Repeat(" ", 64), "0a1bc-defgh-jk1mp",
	} {
		if idx, ok := totp.MatchRecoveryCode(bad, hs); ok {
			t.Errorf("MatchRecoveryCode(%q) = %d, true; want no match", bad, idx)
		}
	}
	if idx, ok := totp.MatchRecoveryCode(c, nil); ok || idx != -1 {
		t.Errorf("MatchRecoveryCode against no hashes = %d, %v", idx, ok)
	}
	// The first of two equal digests is the match.
	if idx, ok := totp.MatchRecoveryCode(c, [][]byte{hashes[0], h, h}); !ok || idx != 1 {
		t.Errorf("MatchRecoveryCode with a duplicate digest = %d, %v; want 1", idx, ok)
	}
	for _, n := range []int{-1, 0, totp.MaxRecoveryCodes + 1} {
		if _, _, err := totp.NewRecoveryCodes(n); !errors.Is(err, totp.ErrRecoveryCount) {
			t.Errorf("NewRecoveryCodes(%d) = %v, want ErrRecoveryCount", n, err)
		}
	}
}

// ExampleVerify checks a code typed by the user and records its step, so
// that the same code is refused the second time.
func ExampleVerify() {
	secret := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // from Key.Secret, opened with OpenSecret
	now := time.Unix(59, 0)
	var lastUsed int64 // the factor's last used step, as stored
	step, ok := totp.Verify(secret, "287082", now, lastUsed)
	fmt.Println(step, ok)
	lastUsed = step // store it: identity.FactorStore.UseTOTPStep
	_, ok = totp.Verify(secret, "287082", now, lastUsed)
	fmt.Println(ok)
	// Output:
	// 1 true
	// false
}
