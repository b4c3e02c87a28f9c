package server

import (
	"crypto/sha256"
	_ "embed" // the OpenAPI documents
	"encoding/base64"
	"net/http"
	"strconv"
)

// The OpenAPI 3.1 documents of the two listeners, served at GET
// /openapi.json on each. TestOpenAPIRoutes keeps them in step with the
// routes registered in New.
var (
	//go:embed openapi/public.json
	publicOpenAPI []byte
	//go:embed openapi/admin.json
	adminOpenAPI []byte
)

// documentHandler serves body, a JSON document that changes only with the
// binary, with a strong ETag (a digest of the body) and an hour's
// Cache-Control; a GET or HEAD whose If-None-Match matches is answered 304.
func documentHandler(body []byte) http.Handler {
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("ETag", etag)
		if noneMatch(r.Header.Values("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}
