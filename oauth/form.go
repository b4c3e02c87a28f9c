package oauth

import (
	"errors"
	"mime"
	"net/http"

	"github.com/ory/fosite"
)

// formContentType is the only request body the token, revocation and
// introspection endpoints accept (RFC 6749 §3.2 and §4.3.2, RFC 7009 §2.1,
// RFC 7662 §2.1).
const formContentType = "application/x-www-form-urlencoded"

// maxFormBytes caps the body of a token, revocation or introspection
// request below http.max_body_bytes: the largest legitimate one (a
// username, a password of at most 4096 bytes, a refresh token, scopes,
// audiences) is a few KiB, and a request queued for a hashing slot holds
// its parsed form, so a flood of maximal bodies must not add up to more
// memory than the hashes themselves (a red-team flood of 500 requests with
// 60 KB bodies reached 235 MiB).
const maxFormBytes = 16 << 10

// readForm reads the body of an OAuth endpoint request into r.PostForm. It
// refuses, with an RFC 6749 §5.2 error, a method other than POST, a body
// that is not application/x-www-form-urlencoded (multipart bodies in
// particular, which fosite would otherwise parse on its own and so see
// other parameters than the ones checked here), a body over maxBytes
// (413), and any parameter included more than once (RFC 6749 §3.2) except
// resource (RFC 8707 §2). After readForm succeeds, r.PostForm holds exactly
// one value per parameter (resource aside), and fosite reads the same form.
func readForm(w http.ResponseWriter, r *http.Request, maxBytes int64) *fosite.RFC6749Error {
	if r.Method != http.MethodPost {
		return errMethod
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != formContentType {
		return errContentType
	}
	r.Body = http.MaxBytesReader(w, r.Body, min(maxBytes, maxFormBytes))
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return errBadForm
	}
	for name, v := range r.PostForm {
		if len(v) > 1 && !repeatable(name) {
			return errDuplicateParam
		}
	}
	return nil
}

// repeatable reports whether a form parameter may be included more than
// once: only RFC 8707's resource (§2: "may use the resource parameter
// multiple times").
func repeatable(name string) bool { return name == "resource" }
