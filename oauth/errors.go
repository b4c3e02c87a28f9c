package oauth

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// The errors this package writes itself. Each has a fixed description in
// the RFC 6749 §5.2 character set: no response ever echoes request input
// or tells how a client is registered.
var (
	errMethod               = rfcError("invalid_request", http.StatusMethodNotAllowed, "The request must use POST.")
	errContentType          = rfcError("invalid_request", http.StatusBadRequest, "The request body must be application/x-www-form-urlencoded.")
	errTooLarge             = rfcError("invalid_request", http.StatusRequestEntityTooLarge, "The request body is too large.")
	errBadForm              = rfcError("invalid_request", http.StatusBadRequest, "The request body is not a valid form.")
	errDuplicateParam       = rfcError("invalid_request", http.StatusBadRequest, "A parameter is included more than once.")
	errNoGrantType          = rfcError("invalid_request", http.StatusBadRequest, "The grant_type parameter is missing.")
	errGrantType            = rfcError("unsupported_grant_type", http.StatusBadRequest, "The grant type is not supported.")
	errNoToken              = rfcError("invalid_request", http.StatusBadRequest, "The token parameter is missing.")
	errRateLimited          = rfcError("temporarily_unavailable", http.StatusTooManyRequests, "Too many password attempts from this address; retry later.")
	errLoginThrottled       = rfcError("temporarily_unavailable", http.StatusTooManyRequests, "Too many failed attempts for this account; retry later.")
	errRevocationsThrottled = rfcError("temporarily_unavailable", http.StatusTooManyRequests, "Too many token revocations by this client; retry later.")
	errUnavailable          = rfcError("temporarily_unavailable", http.StatusServiceUnavailable, "The service is temporarily unavailable; retry shortly.")
	errServer               = rfcError("server_error", http.StatusInternalServerError, "The server could not complete the request.")
	errRefreshUsed          = rfcError("invalid_grant", http.StatusBadRequest, "The refresh token was already used or has been revoked.")
	errOwnerGone            = rfcError("invalid_grant", http.StatusBadRequest, "The resource owner's account no longer exists or is disabled.")
	// errInvalidTarget: a resource (RFC 8707 §2) or audience parameter
	// that is malformed or not allowed for the client.
	errInvalidTarget = rfcError("invalid_target", http.StatusBadRequest, "The requested resource or audience is invalid, unknown or not allowed for this client.")
)

// errNoDefaultAudience is an internal error: the token handler was built
// without AudiencePolicy.Default, and a token would carry an empty aud.
var errNoDefaultAudience = errors.New("no default audience configured: refusing to issue a token with an empty aud")

func rfcError(code string, status int, description string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: code, DescriptionField: description, CodeField: status}
}

// descriptions are the fixed texts sent for fosite's errors, by code.
// fosite's own descriptions are fixed too, but its hints (which it appends
// to them) echo request values such as a requested scope and name the
// authentication method a client is registered with (client enumeration);
// hints are never sent.
var descriptions = map[string]string{
	"invalid_request":           "The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed.",
	"invalid_client":            "Client authentication failed.",
	"invalid_grant":             "The provided grant is invalid, expired or revoked, or was issued to another client.",
	"unauthorized_client":       "The client is not authorized to use this grant type or token.",
	"unsupported_grant_type":    "The grant type is not supported.",
	"invalid_scope":             "The requested scope is invalid, unknown or not allowed for this client.",
	"invalid_target":            "The requested audience is invalid, unknown or not allowed for this client.",
	"unsupported_token_type":    "The token type is not supported.",
	"access_denied":             "The request was denied.",
	"temporarily_unavailable":   "The service is temporarily unavailable; retry shortly.",
	"server_error":              "The server could not complete the request.",
	"invalid_token":             "The token is invalid, expired or revoked.",
	"insufficient_scope":        "The token does not carry the required scope.",
	"request_unauthorized":      "Client authentication failed.",
	"scope_not_granted":         "The requested scope was not granted.",
	"token_inactive":            "The token is invalid, expired or revoked.",
	"invalid_token_format":      "The token is invalid, expired or revoked.",
	"token_signature_mismatch":  "The token is invalid, expired or revoked.",
	"token_expired":             "The token is invalid, expired or revoked.",
	"token_claim":               "The token is invalid, expired or revoked.",
	"request_forbidden":         "The request was denied.",
	"unsupported_response_type": "The request is not supported.",
}

// toRFC6749 maps any error to the RFC 6749 error to send: storage outages
// become temporarily_unavailable (503) rather than fosite's 500 or 401,
// internal errors a bare server_error, and fosite's errors keep their code
// and status with a fixed description from descriptions.
func toRFC6749(err error) *fosite.RFC6749Error {
	if e, ok := errors.AsType[*fosite.RFC6749Error](err); ok && sentAsIs[e] {
		return e
	}
	if e, ok := dpopError(err); ok {
		// A refused proof (RFC 9449 §5, §8): the verifier's fixed text.
		return rfcError(e.Code, http.StatusBadRequest, e.Description)
	}
	if errors.Is(err, apperr.ErrUnavailable) || errors.Is(err, fosite.ErrSerializationFailure) {
		// A conflict with concurrent writers that outlasted the retries.
		return errUnavailable
	}
	if e, ok := errors.AsType[*apperr.Error](err); ok {
		switch e.Code {
		case apperr.ETooLarge:
			return errTooLarge
		case apperr.EUnavailable:
			return errUnavailable
		case apperr.ETooManyRequests:
			return errLoginThrottled
		}
	}
	e, ok := errors.AsType[*fosite.RFC6749Error](err)
	if !ok || (e.CodeField >= 500 && e.ErrorField != "temporarily_unavailable") {
		return errServer
	}
	desc, known := descriptions[e.ErrorField]
	if !known {
		return rfcError("invalid_request", http.StatusBadRequest, descriptions["invalid_request"])
	}
	return rfcError(e.ErrorField, e.CodeField, desc)
}

// sentAsIs are the errors this package declares (here, in clientauth.go
// and scope.go): toRFC6749 passes them through unchanged.
var sentAsIs = map[*fosite.RFC6749Error]bool{
	errMethod: true, errContentType: true, errTooLarge: true, errBadForm: true, errDuplicateParam: true,
	errNoGrantType: true, errGrantType: true, errNoToken: true, errRateLimited: true, errLoginThrottled: true, errRevocationsThrottled: true,
	errUnavailable: true, errServer: true, errRefreshUsed: true, errOwnerGone: true, errInvalidTarget: true,
	errNoClientAuth: true, errTwoAuthMethods: true, errClientAuth: true, errClientAuthEncoding: true,
	errPublicClientCredentials: true, errScopeNotGranted: true, errDPoPRequired: true, errRefreshKey: true, errCodeKey: true,
}

// ReadForm is readForm for the OAuth endpoints of other packages (the
// authorization challenge endpoint): POST, an
// application/x-www-form-urlencoded body of at most maxBytes, each
// parameter (resource aside) once; otherwise an RFC 6749 §5.2 error for
// WriteError.
func ReadForm(w http.ResponseWriter, r *http.Request, maxBytes int64) error {
	if err := readForm(w, r, maxBytes); err != nil {
		return err
	}
	return nil
}

// WriteError writes err as the token endpoint would: an RFC 6749 §5.2
// JSON error with a fixed description, no-store, Retry-After on 429 and
// 503, and the DPoP error of a refused proof.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	rfc := toRFC6749(err)
	if v, ok := apperr.RetryAfterHeader(err); ok {
		w.Header().Set("Retry-After", v)
	}
	writeOAuthError(w, r, rfc)
}

// ErrorCode returns the RFC 6749 error code WriteError sends for err (for
// logs and metrics).
func ErrorCode(err error) (code string, status int) {
	rfc := toRFC6749(err)
	return rfc.ErrorField, rfc.CodeField
}
