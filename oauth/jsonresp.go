package oauth

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSONNoStore writes v as JSON with Cache-Control: no-store, as every
// response of the token, revocation and introspection endpoints must have.
func writeJSONNoStore(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteJSONNoStore is writeJSONNoStore for the OAuth endpoints of other
// packages (the authorization challenge endpoint).
func WriteJSONNoStore(w http.ResponseWriter, status int, v any) { writeJSONNoStore(w, status, v) }
