package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
)

// jwksHandler serves the JWK Set (RFC 7517) from the key manager's memory
// with an ETag and a Cache-Control max-age shorter than the
// pre-publication window. A GET or HEAD whose If-None-Match matches the
// current ETag by the weak comparison of RFC 9110 section 13.1.2 (so
// W/"x" matches "x", as caches and compressing proxies send it), or is
// "*", is answered 304 Not Modified.
func jwksHandler(km *keys.Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set := km.JWKS()
		h := w.Header()
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(set.MaxAge.Seconds())))
		h.Set("ETag", set.ETag)
		if noneMatch(r.Header.Values("If-None-Match"), set.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/jwk-set+json")
		h.Set("Content-Length", strconv.Itoa(len(set.Body)))
		_, _ = w.Write(set.Body)
	})
}

// noneMatch reports whether the If-None-Match field values match etag, an
// entity-tag of the current representation, under RFC 9110 section 13.1.1:
// "*" matches any current representation; otherwise the field is a
// comma-separated list of entity-tags compared weakly (section 13.1.2: two
// tags match when their opaque-tags are identical, whether or not either is
// prefixed with W/). A malformed member matches nothing; the list is still
// scanned for a later valid tag.
func noneMatch(values []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, v := range values {
		for v = strings.TrimSpace(v); v != ""; {
			if v[0] == '*' {
				return true
			}
			tag := strings.TrimPrefix(v, "W/")
			if tag == "" || tag[0] != '"' {
				// Not an entity-tag: skip to the next list member.
				_, v, _ = strings.Cut(v, ",")
				v = strings.TrimSpace(v)
				continue
			}
			end := strings.IndexByte(tag[1:], '"')
			if end < 0 {
				break
			}
			if tag[:end+2] == want {
				return true
			}
			v = strings.TrimSpace(tag[end+2:])
			v = strings.TrimSpace(strings.TrimPrefix(v, ","))
		}
	}
	return false
}

// metadataHandler serves the RFC 8414 metadata document from memory.
func metadataHandler(m oauth.Metadata) http.Handler {
	body, _ := json.Marshal(m)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

// noOpenIDConfiguration serves /.well-known/openid-configuration, where an
// OpenID Provider publishes its OpenID Connect Discovery 1.0 document.
// Portcullis is not an OpenID Provider: it issues no ID tokens and has no
// authorization or userinfo endpoint, so it cannot publish that document's
// required members (authorization_endpoint, subject_types_supported,
// id_token_signing_alg_values_supported) truthfully. The handler answers
// 404 not_found naming the RFC 8414 location, so that clients which try
// the OpenID path first (Spring Security's issuer-uri, RFC 8414 section 5)
// fall back to the RFC 8414 one.
func noOpenIDConfiguration() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteError(w, r, nil, &apperr.Error{Code: apperr.ENotFound,
			Message: "Portcullis is an OAuth 2.0 authorization server, not an OpenID Provider: " +
				"its RFC 8414 metadata is at /.well-known/oauth-authorization-server"})
	})
}
