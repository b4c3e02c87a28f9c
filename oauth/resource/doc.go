// Package resource is what a resource server needs to accept Portcullis
// access tokens without sharing any secret with the authorization server.
//
// A [Verifier] validates RFC 9068 JWT access tokens against keys obtained
// from a [KeySet] (normally a [RemoteKeySet] that discovers the issuer's
// jwks_uri per RFC 8414), following RFC 9068 §4 and the JWT best current
// practices of RFC 8725 (parsing through oauth/jws, the same as the
// authorization server's): compact serialization only, exactly one signature,
// the algorithm taken from the key (never from the token), typ "at+jwt", no
// "crit" header, exact issuer match, audience check, and time claims checked
// with a small leeway. Claims are parsed strictly: names match exactly
// (case-sensitive, RFC 7519 §4), registered claims must have their JSON
// type (exp, iat, nbf and auth_time numbers; iss, sub, jti, client_id,
// scope, preferred_username and acr strings; aud a string or array of
// strings; roles and amr arrays of strings; cnf an object whose jkt is a
// non-empty string), and a repeated member name makes the token invalid. Verified tokens are cached
// until they expire so that repeated requests with the same token cost a
// hash and a map lookup.
//
// [Middleware] turns a Verifier into net/http middleware speaking RFC 6750:
// it reads "Authorization: Bearer <token>", answers 401 with a
// WWW-Authenticate challenge when the token is missing or invalid, and makes
// the verified [Claims] available to the next handler through
// [ClaimsFromContext]. [RequireScope], [RequireRole] and [RequireUser] (the
// token must have been issued for a user, not to a client acting for
// itself) add authorization checks that answer 403.
//
// Step-up authentication (RFC 9470): [Verifier.RequireAuthentication]
// guards a route with a [StepUp] requirement on how the user
// authenticated: an authentication context class ("acr", [Claims.ACR]),
// authentication methods ("amr", [Claims.AMR]) and a maximum age of the
// authentication ("auth_time", [Claims.AuthTime]). A token that does not
// meet it is answered 401 insufficient_user_authentication with the
// acr_values and max_age the client should ask the authorization server
// for.
//
// DPoP (RFC 9449): a token bound to a client's key carries the key's
// thumbprint as cnf.jkt ([Claims.JKT]; the authorization server binds the
// tokens it issues for a token request with a DPoP proof and answers with
// token_type DPoP). Middleware accepts such a token only as
// "Authorization: DPoP <token>" together with a DPoP header holding a
// proof (package oauth/dpop): a JWS signed by that key, made for this
// request's method and URI, carrying the token's hash, recent and never
// seen before (a replay cache remembers the proofs accepted). A bound
// token presented as a bearer token is refused (RFC 9449 §7.2), and
// unbound tokens keep working as bearer tokens, so one resource server
// serves both kinds of clients. Refusals use DPoP challenges with the
// error codes of RFC 9449 §7.1 (invalid_dpop_proof, invalid_token,
// use_dpop_nonce) and the accepted algorithms (algs). The URI a proof
// must name is rebuilt from the request, never from X-Forwarded-*
// headers: behind a reverse proxy, set [DPoPOptions].ExternalURL. Server
// nonces ([DPoPOptions].Nonces) are optional. Clients written in Go use
// dpop.Transport, alone or as the HTTP client of golang.org/x/oauth2,
// which signs a proof for every request (see the examples).
//
// [RemoteKeySet] is the JWKS client: it discovers the issuer's jwks_uri
// from its RFC 8414 metadata, fetches the RFC 7517 JWK Set, keeps only
// usable public signing keys, and caches them as the response's
// Cache-Control allows (RFC 9111), serving known keys from a stale cache
// while it refreshes. The package imports nothing of the authorization
// server (no signing-key manager, sealer or storage), so a resource server
// links only what verifying needs.
//
// A minimal resource server:
//
//	ks := resource.NewRemoteKeySet("https://auth.example.com", resource.RemoteOptions{})
//	v := resource.NewVerifier(ks, resource.Options{
//		Issuer:   "https://auth.example.com",
//		Audience: "https://api.example.com",
//	})
//	mux := http.NewServeMux()
//	mux.Handle("GET /things", resource.Middleware(v)(resource.RequireScope("things:read")(things)))
//
// Errors returned by [Verifier.Verify] are always of type [*Error]; the
// reason can be tested with errors.Is against the Err* sentinels of this
// package.
package resource
