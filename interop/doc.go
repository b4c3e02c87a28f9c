// Package interop holds no code: its tests run the real portcullis binary
// against the client and verifier libraries that users actually use, each
// at its default settings — golang.org/x/oauth2, lestrrat-go/jwx with zero
// clock skew, coreos/go-oidc, panva's jose and openid-client on Node, and
// PyJWT behind a FastAPI resource server — as well as DPoP (RFC 9449)
// clients: openid-client's own DPoP support, and proofs made by jwx, at
// the token endpoint and at userapi — and hold the RFC conformance
// cases for RFC 8414 (metadata and discovery) and RFC 9110 section 13.1.2
// (the JWKS ETag), one test file per RFC, each case naming its section.
//
// The Node tests need node and npm; they install the locked dependencies of
// interop/node with npm ci. The Python test needs /usr/bin/python3 with the
// Debian packages python3-jwt, python3-fastapi, python3-uvicorn and
// python3-httpx (.ci/run installs them). Where a runtime or package is
// missing the test is skipped with a message naming it; .ci/run fails when
// any interop test was skipped.
package interop
