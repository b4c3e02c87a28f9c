// Package cors answers Cross-Origin Resource Sharing (the Fetch standard's
// CORS protocol) for Portcullis's public endpoints, so that browser front
// ends can call the token, revocation and sign-up endpoints and read JWKS
// and metadata.
//
// Two policies exist. [Public] lets every origin read a document that holds
// no secret (JWKS, RFC 8414 metadata): "Access-Control-Allow-Origin: *".
// [Policy] allows configured origins only, never with credentials mode
// (no "Access-Control-Allow-Credentials"): a server-wide list, and the
// origins registered on OAuth clients (Keycloak's "web origins", Hydra's
// allowed_cors_origins).
//
// A preflight (OPTIONS) carries no body, so the client is not known yet: it
// is allowed when the server-wide list or any client lists the origin. The
// actual request's response carries Access-Control-Allow-Origin only when
// the server-wide list or the client it names (HTTP Basic user name, else
// the form's client_id) lists the origin, so an origin registered for one
// client cannot read another client's tokens. Error responses get the same
// header, so that a browser can read the OAuth error.
package cors
