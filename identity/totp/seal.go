package totp

import (
	"fmt"

	"github.com/portcullis-auth/portcullis/internal/seal"
)

// SealSecret seals a TOTP secret (Key.Secret) for storage under the
// primary secrets key, bound to the factor's ID (purpose seal.TOTPSecret):
// the sealed value opens for that factor only, never as another factor's
// secret or as a signing key. Store the returned wrap-key ID with it. It
// fails only when the random source fails.
func SealSecret(s *seal.Sealer, factorID, secret string) (wrapID string, sealed []byte, err error) {
	wrapID, sealed, err = s.Seal(seal.TOTPSecret, factorID, []byte(secret))
	if err != nil {
		return "", nil, fmt.Errorf("totp: seal secret of factor %s: %w", factorID, err)
	}
	return wrapID, sealed, nil
}

// OpenSecret opens a secret sealed by SealSecret for factorID under the
// secrets key wrapID. Its error matches seal.ErrWrongKey (errors.Is) when
// the secrets key is not one the Sealer was given, or the value was sealed
// for another factor or purpose, or altered.
func OpenSecret(s *seal.Sealer, factorID, wrapID string, sealed []byte) (string, error) {
	pt, err := s.Open(seal.TOTPSecret, factorID, wrapID, sealed)
	if err != nil {
		return "", fmt.Errorf("totp: open secret of factor %w", err)
	}
	return string(pt), nil
}
