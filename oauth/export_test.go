package oauth

import (
	"context"

	"github.com/portcullis-auth/portcullis/keys"
)

// DecodeAccessToken runs the server's jwt.Signer Decode with the keys of
// km (tests only: fosite calls it behind introspection, the admin API and
// revocation).
func DecodeAccessToken(ctx context.Context, km *keys.Manager, token string) error {
	_, err := (&jwtSigner{keys: km}).Decode(ctx, token)
	return err
}
