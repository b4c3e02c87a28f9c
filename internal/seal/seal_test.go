package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func secret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sealer(t *testing.T, primary []byte, old ...[]byte) *Sealer {
	t.Helper()
	s, err := New(primary, old...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// golden is testdata/signing-key-v1.json: a signing key sealed by
// keys.Sealer before this package existed.
type golden struct {
	SecretsKey string `json:"secrets_key"`
	WrapKeyID  string `json:"wrap_key_id"`
	ID         string `json:"id"`
	Plaintext  string `json:"plaintext"`
	Sealed     []byte `json:"sealed"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "signing-key-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGoldenSigningKey: a private key sealed by the code before this
// package (keys.Sealer, AAD "portcullis signing key v1\x00"+kid) opens as
// SigningKey, and sealing it again with the same nonce gives the same bytes:
// signing keys in existing databases keep opening.
func TestGoldenSigningKey(t *testing.T) {
	g := readGolden(t)
	key, err := DecodeKey(g.SecretsKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := WrapKeyID(key); got != g.WrapKeyID {
		t.Fatalf("WrapKeyID = %s, want %s as stored", got, g.WrapKeyID)
	}
	s := sealer(t, key)
	pt, err := s.Open(SigningKey, g.ID, g.WrapKeyID, g.Sealed)
	if err != nil || string(pt) != g.Plaintext {
		t.Fatalf("Open(golden) = %q, %v", pt, err)
	}
	s.rand = bytes.NewReader(g.Sealed[:12])
	wrap, sealed, err := s.Seal(SigningKey, g.ID, []byte(g.Plaintext))
	if err != nil || wrap != g.WrapKeyID || !bytes.Equal(sealed, g.Sealed) {
		t.Errorf("Seal with the golden nonce = %s %s, %v; want %s %s", wrap,
			base64.StdEncoding.EncodeToString(sealed), err, g.WrapKeyID, base64.StdEncoding.EncodeToString(g.Sealed))
	}
}

// TestPurposeBytes: the purposes' bytes are part of every stored sealed
// value; changing one would make every value sealed for it unreadable.
func TestPurposeBytes(t *testing.T) {
	for p, want := range map[Purpose]string{
		SigningKey: "portcullis signing key v1",
		TOTPSecret: "portcullis totp secret v1",
	} {
		if string(p) != want {
			t.Errorf("purpose %q changed, want %q: stored values would no longer open", p, want)
		}
	}
}

// TestPurposeSeparation: a value sealed for one purpose never opens for
// another, with the same key and ID, in either direction (a TOTP secret
// does not open as a signing key, nor a signing key as a TOTP secret); nor
// does a purpose and ID split differently around the NUL separator.
func TestPurposeSeparation(t *testing.T) {
	const totp = TOTPSecret
	s := sealer(t, secret(t))
	for _, tc := range []struct{ sealFor, openAs Purpose }{{SigningKey, totp}, {totp, SigningKey}} {
		wrap, sealed, err := s.Seal(tc.sealFor, "id-1", []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.Open(tc.sealFor, "id-1", wrap, sealed); err != nil || string(pt) != "secret" {
			t.Fatalf("Open(%q) = %q, %v", tc.sealFor, pt, err)
		}
		if _, err := s.Open(tc.openAs, "id-1", wrap, sealed); !errors.Is(err, ErrWrongKey) {
			t.Errorf("sealed for %q, opened as %q: err = %v, want ErrWrongKey", tc.sealFor, tc.openAs, err)
		}
	}
	g := readGolden(t)
	key, _ := DecodeKey(g.SecretsKey)
	if _, err := sealer(t, key).Open(totp, g.ID, g.WrapKeyID, g.Sealed); !errors.Is(err, ErrWrongKey) {
		t.Errorf("golden signing key opened as a TOTP secret: %v", err)
	}
	for _, bad := range []Purpose{"", "a\x00b"} {
		if _, _, err := s.Seal(bad, "id", []byte("x")); err == nil {
			t.Errorf("Seal accepted purpose %q", bad)
		}
		if _, err := s.Open(bad, "id", s.PrimaryID(), []byte("0123456789abcdef0123456789")); err == nil || errors.Is(err, ErrWrongKey) {
			t.Errorf("Open(purpose %q) = %v, want an invalid-purpose error", bad, err)
		}
	}
}

func TestSealer(t *testing.T) {
	k1, k2 := secret(t), secret(t)
	s1 := sealer(t, k1)
	wrap, sealed, err := s1.Seal(SigningKey, "kid-1", []byte("private key bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if wrap != WrapKeyID(k1) || wrap != s1.PrimaryID() || bytes.Contains(sealed, []byte("private key bytes")) {
		t.Fatalf("wrap %s, sealed %x", wrap, sealed)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name   string
		sealer *Sealer
		id     string
		sealed []byte
		ok     bool
	}{
		{"same key", s1, "kid-1", sealed, true},
		{"old key still opens", sealer(t, k2, k1), "kid-1", sealed, true},
		{"wrong key", sealer(t, k2), "kid-1", sealed, false},
		{"bound to id", s1, "kid-2", sealed, false},
		{"tampered", s1, "kid-1", tampered, false},
		{"truncated", s1, "kid-1", sealed[:5], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.sealer.Open(SigningKey, tc.id, wrap, tc.sealed)
			if tc.ok {
				if err != nil || string(pt) != "private key bytes" {
					t.Fatalf("Open = %q, %v", pt, err)
				}
				return
			}
			if !errors.Is(err, ErrWrongKey) {
				t.Fatalf("Open error = %v, want ErrWrongKey", err)
			}
		})
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("a 5-byte secrets key was accepted")
	}
}

func TestDecodeKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, KeySize) // '+' and '/' in standard base64
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if got, err := DecodeKey(" " + enc.EncodeToString(key) + "\n"); err != nil || !bytes.Equal(got, key) {
			t.Errorf("DecodeKey(%s) = %x, %v", enc.EncodeToString(key), got, err)
		}
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(key[:16])} {
		if _, err := DecodeKey(bad); err == nil {
			t.Errorf("DecodeKey(%q) accepted", bad)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portcullis.db.key")
	k1, created, err := LoadOrCreateKeyFile(path, nil)
	if err != nil || !created || len(k1) != KeySize {
		t.Fatalf("first call: %x %v %v", k1, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	k2, created, err := LoadOrCreateKeyFile(path, nil)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second call: created=%v err=%v equal=%v", created, err, bytes.Equal(k1, k2))
	}
	if err := os.WriteFile(path, []byte("not base64!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeyFile(path, nil); err == nil {
		t.Error("a corrupt key file was accepted")
	}
}
