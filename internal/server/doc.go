// Package server is Portcullis's HTTP transport: the route tables of the
// public and the admin listener and the middleware around them
// (hardening headers and panic recovery, instrumentation and access log,
// request IDs, CORS, JSON 404/405), the sign-up handler, the JWKS and
// RFC 8414 metadata documents, and health checks. New builds both
// listeners' handlers from the domain services; cmd/portcullis only
// constructs those services and runs the listeners.
//
// The OAuth protocol endpoints themselves (token, revocation,
// introspection) are fosite's and live in package oauth; the admin API is
// package internal/server/adminapi, the signed-in user's account API
// package internal/server/account, and both check access tokens with
// package internal/server/bearer.
package server
