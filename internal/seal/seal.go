package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size in bytes of a secrets key.
const KeySize = 32

// ErrWrongKey is matched (errors.Is) by the error of [Sealer.Open] when a
// value was sealed under a secrets key the Sealer was not given, or does not
// open with it: wrong key, tampered or truncated data, or a different
// purpose or ID.
var ErrWrongKey = errors.New("sealed with a different secrets key")

// Purpose names what a sealed value is, and is bound into it: a value sealed
// for one Purpose never opens for another. Each kind of secret has its own,
// declared here so that no two collide; a new version of a format gets a new
// Purpose. A Purpose is non-empty and contains no NUL byte.
type Purpose string

// Purposes.
const (
	// SigningKey seals the PKCS #8 private keys of package keys, with the
	// key's kid as ID. Its bytes must never change: stored keys open
	// with them.
	SigningKey Purpose = "portcullis signing key v1"
	// TOTPSecret seals the base32 secrets of TOTP factors (package
	// identity/totp), with the factor's ID as ID. Its bytes must never
	// change: stored secrets open with them.
	TOTPSecret Purpose = "portcullis totp secret v1"
)

// aad returns the GCM additional data binding a value to purpose and id:
// purpose, NUL, id. Since a Purpose holds no NUL, the first NUL ends it and
// no (purpose, id) pair yields another pair's bytes.
func (p Purpose) aad(id string) ([]byte, error) {
	if p == "" || strings.IndexByte(string(p), 0) >= 0 {
		return nil, fmt.Errorf("seal: invalid purpose %q (empty or holding NUL)", p)
	}
	return []byte(string(p) + "\x00" + id), nil
}

// Sealer seals values with AES-256-GCM under a primary secrets key and opens
// values sealed under the primary or any older key it was given.
type Sealer struct {
	primary string
	aeads   map[string]cipher.AEAD
	rand    io.Reader
}

// WrapKeyID returns the public identifier of a secrets key: a truncated
// SHA-256 of the key under a fixed label. It identifies, never reveals.
func WrapKeyID(secret []byte) string {
	h := sha256.Sum256(append([]byte("portcullis secrets key id\x00"), secret...))
	return "sk-" + hex.EncodeToString(h[:8])
}

// New returns a Sealer sealing under primary and also opening values sealed
// under any of old. Every key must be KeySize bytes.
func New(primary []byte, old ...[]byte) (*Sealer, error) {
	s := &Sealer{aeads: map[string]cipher.AEAD{}, rand: rand.Reader}
	for i, k := range append([][]byte{primary}, old...) {
		if len(k) != KeySize {
			return nil, fmt.Errorf("secrets key must be %d bytes, got %d", KeySize, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := WrapKeyID(k)
		if i == 0 {
			s.primary = id
		}
		s.aeads[id] = aead
	}
	return s, nil
}

// PrimaryID returns the wrap-key ID new seals are made under.
func (s *Sealer) PrimaryID() string { return s.primary }

// Seal encrypts plaintext for the record id under the primary secrets key,
// binding the result to purpose and id, and returns the primary's wrap-key
// ID with it. It fails only when purpose is invalid or the random source
// fails.
func (s *Sealer) Seal(purpose Purpose, id string, plaintext []byte) (wrapID string, sealed []byte, err error) {
	ad, err := purpose.aad(id)
	if err != nil {
		return "", nil, err
	}
	aead := s.aeads[s.primary]
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return "", nil, fmt.Errorf("nonce: %w", err)
	}
	return s.primary, aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open decrypts a value sealed by Seal for the same purpose and id under
// the secrets key wrapID. It returns an error wrapping ErrWrongKey when
// wrapID is not one of the Sealer's keys or the value does not
// authenticate (another key, purpose or id, or altered data). The error's
// text begins with id, so a caller may prefix what it is ("signing key ").
func (s *Sealer) Open(purpose Purpose, id, wrapID string, sealed []byte) ([]byte, error) {
	ad, err := purpose.aad(id)
	if err != nil {
		return nil, err
	}
	aead, ok := s.aeads[wrapID]
	if !ok {
		return nil, fmt.Errorf("%s is sealed under secrets key %s, but the configured secrets key is %s: %w",
			id, wrapID, s.primary, ErrWrongKey)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("%s: sealed data truncated: %w", id, ErrWrongKey)
	}
	pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil {
		return nil, fmt.Errorf("%s does not open with secrets key %s: %w", id, wrapID, ErrWrongKey)
	}
	return pt, nil
}

// DecodeKey parses a base64 (standard or URL alphabet, padded or not)
// secrets key of KeySize bytes. Its errors never contain the input.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("not valid base64 (standard or URL alphabet, padded or not)")
}

// LoadOrCreateKeyFile reads a base64 secrets key from path, creating the
// file with a fresh random key (mode 0600) when it does not exist. created
// reports whether a new key was written.
func LoadOrCreateKeyFile(path string, random io.Reader) (key []byte, created bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := DecodeKey(string(data))
		if err != nil {
			return nil, false, fmt.Errorf("secrets key file %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read secrets key file: %w", err)
	}
	if random == nil {
		random = rand.Reader
	}
	key = make([]byte, KeySize)
	if _, err := io.ReadFull(random, key); err != nil {
		return nil, false, err
	}
	// Write a temporary file and hard-link it into place: the link fails if
	// another process won the race, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".portcullis-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("create secrets key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("create secrets key file: %w", err)
	}
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write secrets key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return LoadOrCreateKeyFile(path, random)
	} else if err != nil {
		return nil, false, fmt.Errorf("create secrets key file: %w", err)
	}
	return key, true, nil
}
