// Package dpop implements OAuth 2.0 Demonstrating Proof of Possession
// (DPoP, RFC 9449) for both sides of a request.
//
// Servers: a [Verifier] checks the DPoP proof of a request (RFC 9449
// §4.3): a compact JWS of type dpop+jwt, signed with an asymmetric
// algorithm from an allow-list by the public key in its jwk header (never
// a private or symmetric key), whose htm and htu name the request's method
// and URI, whose iat is recent, whose jti was not seen before
// ([ReplayCache]), with ath, the hash of the access token, when one is
// presented (§7), and, when the server demands them, a nonce it issued
// ([Nonces], §8 and §9). The authorization server binds the tokens it
// issues to the proof's key thumbprint ([Proof.JKT], RFC 7638), which the
// token carries as cnf.jkt (§6); a resource server compares the two.
//
// Clients: a [Key] signs proofs, and [Transport] is an http.RoundTripper
// that adds one to every request, with ath when the request carries
// "Authorization: DPoP <token>", and learns and retries with the server's
// nonces. Used as the HTTP client of golang.org/x/oauth2, it makes the
// token requests and the resource requests of a Go program DPoP-bound
// without hand-written proofs.
package dpop
