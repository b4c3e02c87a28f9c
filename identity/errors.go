package identity

import (
	"errors"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// authMaxPasswordBytes bounds the password bytes Authenticate will hash;
// longer inputs are rejected after the same dummy work.
const authMaxPasswordBytes = 4096

// AsAppError turns a *PolicyError into an apperr.EInvalid error carrying its
// reasons; other errors are returned unchanged.
func AsAppError(err error) error {
	if pe, ok := errors.AsType[*PolicyError](err); ok {
		return &apperr.Error{Code: apperr.EInvalid, Message: pe.Error()}
	}
	return err
}
