package keys

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

// SecretsKeySize is the size of the secrets key that seals private keys.
const SecretsKeySize = 32

// ErrWrongSecretsKey means a sealed private key was sealed under a secrets
// key that was not configured, or does not open with it.
var ErrWrongSecretsKey = errors.New("signing keys were sealed with a different secrets key")

// Sealer seals private keys with AES-256-GCM under a primary secrets key and
// opens keys sealed under the primary or any older key it was given.
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

// NewSealer returns a Sealer sealing under primary and also opening keys
// sealed under any of old. Every key must be SecretsKeySize bytes.
func NewSealer(primary []byte, old ...[]byte) (*Sealer, error) {
	s := &Sealer{aeads: map[string]cipher.AEAD{}, rand: rand.Reader}
	for i, k := range append([][]byte{primary}, old...) {
		if len(k) != SecretsKeySize {
			return nil, fmt.Errorf("secrets key must be %d bytes, got %d", SecretsKeySize, len(k))
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

func aad(kid string) []byte { return []byte("portcullis signing key v1\x00" + kid) }

// Seal encrypts plaintext for the key kid, binding the ciphertext to kid.
func (s *Sealer) Seal(kid string, plaintext []byte) (wrapID string, sealed []byte, err error) {
	aead := s.aeads[s.primary]
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return "", nil, fmt.Errorf("nonce: %w", err)
	}
	return s.primary, aead.Seal(nonce, nonce, plaintext, aad(kid)), nil
}

// Open decrypts a key sealed by Seal. It returns an error wrapping
// ErrWrongSecretsKey when wrapID is unknown or authentication fails.
func (s *Sealer) Open(kid, wrapID string, sealed []byte) ([]byte, error) {
	aead, ok := s.aeads[wrapID]
	if !ok {
		return nil, fmt.Errorf("key %s is sealed under secrets key %s, but the configured secrets key is %s: %w",
			kid, wrapID, s.primary, ErrWrongSecretsKey)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("key %s: sealed data truncated: %w", kid, ErrWrongSecretsKey)
	}
	pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad(kid))
	if err != nil {
		return nil, fmt.Errorf("key %s does not open with secrets key %s: %w", kid, wrapID, ErrWrongSecretsKey)
	}
	return pt, nil
}

// DecodeSecretsKey parses a base64 (standard or URL alphabet, padded or not)
// secrets key of SecretsKeySize bytes.
func DecodeSecretsKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != SecretsKeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), SecretsKeySize)
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
		key, err := DecodeSecretsKey(string(data))
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
	key = make([]byte, SecretsKeySize)
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
