// Command userapi is the reference resource server: a separate process that
// knows nothing but the issuer URL. It discovers the issuer's jwks_uri from
// its RFC 8414 metadata, verifies RFC 9068 access tokens locally and never
// shares a secret with the authorization server.
//
// Usage:
//
//	userapi --issuer URL [--addr :8090] [--audience AUD] [--unknown-kid-wait 2s]
//	        [--external-url URL] [--step-up-acr 2] [--step-up-max-age 0]
//
// Each flag has an environment variable (USERAPI_ISSUER, USERAPI_ADDR,
// USERAPI_AUDIENCE, USERAPI_UNKNOWN_KID_WAIT, USERAPI_EXTERNAL_URL,
// USERAPI_STEP_UP_ACR, USERAPI_STEP_UP_MAX_AGE); flags override the
// environment. --audience defaults to the server's own base
// URL: --external-url when it is set, otherwise http://HOST:PORT, where
// HOST is the host part of --addr ("localhost" when it is empty or
// unspecified, such as 0.0.0.0) and PORT the port actually listened on.
// --unknown-kid-wait (a positive duration, default 2s) bounds how long a
// request whose token names a signing key userapi has not seen waits for
// the issuer's JWKS.
//
// DPoP (RFC 9449) is accepted next to bearer tokens: a token bound to the
// client's key (cnf.jkt) must come as "Authorization: DPoP <token>" with
// exactly one DPoP header, a proof signed by that key for this request's
// method and URI and carrying the token's hash; each proof is accepted
// once (userapi remembers them in memory, so each replica of a
// replicated userapi accepts a captured proof at most once within its
// minute). The URI a proof must name is rebuilt from the request (http,
// the Host header and the path); X-Forwarded-* headers are not trusted.
// Behind a reverse proxy, set --external-url to the URL clients use for
// userapi's root, scheme://host[:port][/prefix], including the path prefix
// the proxy strips (https://example.com/api when
// https://example.com/api/users/me reaches userapi as /users/me); the URI
// is then that URL followed by the request's path. Since that URL is
// userapi's base URL as clients see it, it is also the default audience
// (a trailing "/" dropped).
//
// Routes:
//
//	GET /users/me           the caller, from the verified token:
//	                        {"id","username","roles","scope","client_id","expires_at"}
//	GET /users/me/security  how the caller authenticated, for a token that
//	                        meets the step-up requirement (below):
//	                        {"sub","preferred_username","acr","amr","auth_time"}
//	GET /health/alive       liveness
//
// /users/me/security demonstrates RFC 9470 step-up authentication: it
// accepts only a token whose acr is one of --step-up-acr (values separated
// by commas or spaces; default "2", Portcullis's acr for a login with a
// second factor) and, when --step-up-max-age is set (a whole number of
// seconds such as 5m; default 0, not checked), whose auth_time is at most
// that long ago (plus a 30 s leeway for clock skew). Any other user token
// gets 401 with
//
//	WWW-Authenticate: Bearer error="insufficient_user_authentication",
//	  error_description="A different authentication level is required.",
//	  acr_values="2", max_age=300
//
// (one line; max_age only when set; the DPoP scheme, with algs, for a
// DPoP-bound token): the client should have the user log in again asking
// the authorization server for those acr_values and max_age. In its
// answer, amr is an array ([] when absent) and auth_time a NumericDate
// (null when absent).
//
// A missing token gets 401 with two challenges, `WWW-Authenticate: Bearer
// realm="AUD"` and `WWW-Authenticate: DPoP algs="ES256 ..."`; a bad,
// expired, wrong-issuer, wrong-audience or unknown-key token gets 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), and so does
// a DPoP-bound token sent as a bearer token. Under the DPoP scheme the
// challenges are DPoP ones (RFC 9449 §7.1): error="invalid_dpop_proof" for
// a missing, duplicated or failing proof, error="invalid_token" for a bad
// or unbound token or a proof signed by another key than the token's.
// /users/me and /users/me/security are about a user: a valid token that
// carries none (a client_credentials token, whose sub is its client_id and
// which has no preferred_username) gets 403 with `WWW-Authenticate: Bearer
// error="insufficient_scope", error_description="token does not identify a
// user"` (RFC 6750 §3.1: the token is valid but lacks the privilege; the
// scheme is DPoP for a DPoP-bound token), before any step-up check.
//
// The issuer need not be up when userapi starts: keys are fetched in the
// background at start-up and again on demand. While no key set has ever
// been fetched, requests carrying a token get 503 temporarily_unavailable
// with Retry-After (the token may be good; the client should retry), not
// 401. Once keys were fetched, an outage of the issuer does not matter:
// tokens signed by a known key are verified at once from the cache, even
// when the cache has expired (it is then refreshed in the background, one
// fetch at a time), so a slow or hung issuer does not slow requests down. A
// token naming an unknown key waits at most --unknown-kid-wait for a fresh
// JWKS and is then refused as invalid_token.
//
// Logs are structured (log/slog text) on stderr; once listening, userapi
// logs exactly one line `msg="userapi listening" addr=HOST:PORT`. It shuts
// down gracefully on SIGINT or SIGTERM.
package main
