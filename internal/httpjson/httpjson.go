// Package httpjson writes and reads the JSON bodies of Portcullis's non-OAuth
// endpoints, mapping application errors to HTTP status codes in one table.
package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// statusOf maps every application error code to its HTTP status.
var statusOf = map[apperr.Code]int{
	apperr.ENotFound:           http.StatusNotFound,
	apperr.EConflict:           http.StatusConflict,
	apperr.EInvalid:            http.StatusBadRequest,
	apperr.EUnauthorized:       http.StatusUnauthorized,
	apperr.EForbidden:          http.StatusForbidden,
	apperr.ETooLarge:           http.StatusRequestEntityTooLarge,
	apperr.EPreconditionFailed: http.StatusPreconditionFailed,
	apperr.ETooManyRequests:    http.StatusTooManyRequests,
	apperr.EUnavailable:        http.StatusServiceUnavailable,
	apperr.EInternal:           http.StatusInternalServerError,
}

// Status returns the HTTP status for err.
func Status(err error) int {
	if s, ok := statusOf[apperr.CodeOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON shape of every non-OAuth error response.
type ErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// WriteError writes err as {"error","error_description"} with the status of
// its code. Internal errors are logged with logger and answered generically,
// so no detail (and never a stack trace) reaches the client.
func WriteError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code := apperr.CodeOf(err)
	status := Status(err)
	if code == apperr.EInternal && logger != nil {
		logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if v, ok := apperr.RetryAfterHeader(err); ok {
		w.Header().Set("Retry-After", v)
	} else if code == apperr.EUnavailable || code == apperr.ETooManyRequests {
		w.Header().Set("Retry-After", "5")
	}
	Write(w, status, ErrorBody{Error: string(code), ErrorDescription: apperr.MessageOf(err)})
}

// Write writes v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"server_error","error_description":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// Decode reads one JSON object from r's body into v (a pointer to a
// struct), limited to maxBytes. Decoding is strict: member names must match
// v's JSON field names exactly (encoding/json alone would take "Username"
// for "username"), no object may repeat a member (encoding/json would keep
// the last: {"username":"a","username":"admin"}), and unknown members,
// trailing data and oversized bodies are refused. Failures are client
// errors (apperr.EInvalid, apperr.ETooLarge) with fixed messages that
// never repeat the input.
func Decode(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	return decode(w, r, maxBytes, v, false)
}

// DecodeIgnoringUnknown is Decode for bodies of registration metadata (RFC
// 7591 §2: the server "MUST ignore any client metadata sent by the client
// that it does not understand"): a top-level member whose name is not
// exactly one of v's JSON field names is dropped before decoding (never
// matched case-insensitively to a field). Everything else is as strict as
// Decode: repeated members, wrong types, trailing data and oversized
// bodies are refused.
func DecodeIgnoringUnknown(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	return decode(w, r, maxBytes, v, true)
}

func decode(w http.ResponseWriter, r *http.Request, maxBytes int64, v any, ignoreUnknown bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return apperr.Errorf(apperr.ETooLarge, "request body exceeds %d bytes", maxBytes)
		}
		return apperr.Errorf(apperr.EInvalid, "request body could not be read")
	}
	names := fieldNames(v)
	if ignoreUnknown {
		if err := checkMembers(body, nil); err != nil {
			return err
		}
		body = dropUnknown(body, names)
	} else if err := checkMembers(body, names); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return apperr.Errorf(apperr.ETooLarge, "request body exceeds %d bytes", maxBytes)
		}
		if errors.Is(err, io.EOF) {
			return apperr.Errorf(apperr.EInvalid, "request body must be a JSON object")
		}
		return apperr.Errorf(apperr.EInvalid, "malformed JSON body: %s", jsonProblem(err))
	}
	if dec.More() {
		return apperr.Errorf(apperr.EInvalid, "request body must hold exactly one JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return apperr.Errorf(apperr.ETooLarge, "request body exceeds %d bytes", maxBytes)
		}
		return apperr.Errorf(apperr.EInvalid, "request body must hold exactly one JSON object")
	}
	return nil
}

// dropUnknown returns body, a JSON object, without its top-level members
// not named in names; anything that is not exactly one JSON object is
// returned unchanged, for the decoder to refuse.
func dropUnknown(body []byte, names map[string]bool) []byte {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil || members == nil {
		return body
	}
	for k := range members {
		if !names[k] {
			delete(members, k)
		}
	}
	out, err := json.Marshal(members)
	if err != nil {
		return body
	}
	return out
}

// jsonProblem describes a decoding error without repeating the input: a
// field named in it is one of the target's own (unknown ones are refused
// before decoding).
func jsonProblem(err error) string {
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("field %q has the wrong type", e.Field)
	}
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("syntax error at offset %d", e.Offset)
	}
	return "invalid value"
}

// fieldNames returns the JSON member names of the struct v points to, or
// nil when v is not a pointer to a struct.
func fieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	names := map[string]bool{}
	for i := range t.Elem().NumField() {
		f := t.Elem().Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// checkMembers walks a JSON document and refuses a top-level member whose
// name is not exactly one of names (when names is not nil) and any object,
// at any depth, that repeats a member name.
func checkMembers(body []byte, names map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*jsonObject
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // syntax errors are reported by the decoder proper
		}
		var top *jsonObject
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return nil // one value checked; the decoder refuses more
				}
				markValueDone(stack)
				continue
			}
			key, _ := tok.(string)
			if top.seen[key] {
				return apperr.Errorf(apperr.EInvalid, "malformed JSON body: a member is repeated")
			}
			top.seen[key] = true
			if len(stack) == 1 && names != nil && !names[key] {
				return apperr.Errorf(apperr.EInvalid, "malformed JSON body: unknown field")
			}
			top.expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &jsonObject{seen: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, nil)
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return nil
			}
			markValueDone(stack)
		default:
			if len(stack) == 0 {
				return nil // not an object; the decoder reports it
			}
			markValueDone(stack)
		}
	}
}

// jsonObject is an object being walked by checkMembers; arrays are nil
// entries on its stack.
type jsonObject struct {
	seen      map[string]bool
	expectKey bool
}

// markValueDone records that the value of the innermost object's current
// member is complete.
func markValueDone(stack []*jsonObject) {
	if n := len(stack); n > 0 && stack[n-1] != nil {
		stack[n-1].expectKey = true
	}
}

// RouteErrors serves mux, rendering its own 404 and 405 answers (for
// requests no pattern matches) as JSON errors instead of plain text; the
// 405 keeps the Allow header the mux sets. They carry Cache-Control:
// no-store, as every error of the OAuth endpoints must.
func RouteErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&jsonRouteError{ResponseWriter: w}, r)
	})
}

// jsonRouteError replaces the mux's text error body with a JSON one.
type jsonRouteError struct {
	http.ResponseWriter
	wrote bool
}

func (j *jsonRouteError) WriteHeader(code int) {
	if j.wrote {
		return
	}
	j.wrote = true
	j.Header().Set("Cache-Control", "no-store")
	body := ErrorBody{Error: string(apperr.ENotFound), ErrorDescription: "no such endpoint"}
	if code == http.StatusMethodNotAllowed {
		body = ErrorBody{Error: "method_not_allowed", ErrorDescription: "use " + j.Header().Get("Allow")}
	}
	Write(j.ResponseWriter, code, body)
}

func (j *jsonRouteError) Write(b []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusNotFound)
	}
	return len(b), nil // the mux's text body is dropped
}
