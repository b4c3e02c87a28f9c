// Command userapi is the reference resource server: a separate process that
// knows nothing but the issuer URL. It discovers the issuer's jwks_uri from
// its RFC 8414 metadata, verifies RFC 9068 access tokens locally and never
// shares a secret with the authorization server.
//
// Usage:
//
//	userapi --issuer URL [--addr :8090] [--audience AUD] [--unknown-kid-wait 2s]
//
// Each flag has an environment variable (USERAPI_ISSUER, USERAPI_ADDR,
// USERAPI_AUDIENCE, USERAPI_UNKNOWN_KID_WAIT); flags override the
// environment. --audience defaults to the server's own base URL,
// http://HOST:PORT, where HOST is the host part of --addr ("localhost" when
// it is empty or unspecified, such as 0.0.0.0) and PORT the port actually
// listened on. --unknown-kid-wait (a positive duration, default 2s) bounds
// how long a request whose token names a signing key userapi has not seen
// waits for the issuer's JWKS.
//
// Routes:
//
//	GET /users/me      the caller, from the verified token:
//	                   {"id","username","roles","scope","client_id","expires_at"}
//	GET /health/alive  liveness
//
// A missing token gets 401 with `WWW-Authenticate: Bearer realm="AUD"`; a
// bad, expired, wrong-issuer, wrong-audience or unknown-key token gets 401
// with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750).
// /users/me is about a user: a valid token that carries none (a
// client_credentials token, whose sub is its client_id and which has no
// preferred_username) gets 403 with `WWW-Authenticate: Bearer
// error="insufficient_scope", error_description="token does not identify a
// user"` (RFC 6750 §3.1: the token is valid but lacks the privilege).
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
