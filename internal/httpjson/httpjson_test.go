package httpjson_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string           `json:"name"`
		N    int              `json:"n"`
		Tags []map[string]int `json:"tags"`
	}
	tests := []struct {
		name string
		in   string
		code apperr.Code // "" means success
	}{
		{"ok", `{"name":"a","n":1}`, ""},
		{"ok with trailing space", "{\"name\":\"a\"}\n ", ""},
		{"empty", ``, apperr.EInvalid},
		{"not an object", `[1,2]`, apperr.EInvalid},
		{"syntax", `{"name":`, apperr.EInvalid},
		{"wrong type", `{"n":"x"}`, apperr.EInvalid},
		{"unknown field", `{"name":"a","admin":true}`, apperr.EInvalid},
		{"name in other case", `{"Name":"a"}`, apperr.EInvalid},
		{"duplicate member", `{"name":"a","name":"b"}`, apperr.EInvalid},
		{"duplicate nested member", `{"name":"a","tags":[{"k":1,"k":2}]}`, apperr.EInvalid},
		{"same member in sibling objects", `{"name":"a","tags":[{"k":1},{"k":2}]}`, ""},
		{"two objects", `{"name":"a"}{"name":"b"}`, apperr.EInvalid},
		{"trailing garbage", `{"name":"a"} x`, apperr.EInvalid},
		{"too large", `{"name":"` + strings.Repeat("a", 200) + `"}`, apperr.ETooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.in))
			var v body
			err := httpjson.Decode(httptest.NewRecorder(), r, 100, &v)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Decode = %v", err)
				}
				return
			}
			if got := apperr.CodeOf(err); got != tc.code {
				t.Fatalf("code = %s (%v), want %s", got, err, tc.code)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
		desc   string
	}{
		{apperr.Errorf(apperr.ENotFound, "client not found"), 404, "not_found", "client not found"},
		{apperr.ErrAlreadyExists, 409, "conflict", "already exists"},
		{apperr.Errorf(apperr.EInvalid, "bad"), 400, "invalid_request", "bad"},
		{apperr.Errorf(apperr.ETooLarge, "big"), 413, "request_too_large", "big"},
		{apperr.ErrUnavailable, 503, "temporarily_unavailable", apperr.ErrUnavailable.Message},
		{errors.New("dial tcp 10.0.0.1: secret detail"), 500, "server_error", "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpjson.WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), nil, tc.err)
			var got httpjson.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || got.Error != tc.code || got.ErrorDescription != tc.desc {
				t.Fatalf("%d %+v", rec.Code, got)
			}
			if rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
			}
			if tc.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestRouteErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /things", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	h := httpjson.RouteErrors(mux)
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/things", 200, "", ""},
		{"POST", "/things", 405, "method_not_allowed", "GET, HEAD"},
		{"GET", "/nothing", 404, "not_found", ""},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"))
		}
		if tc.code == "" {
			continue
		}
		var body httpjson.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != tc.code {
			t.Errorf("%s %s: body %q (%v), want JSON error %s", tc.method, tc.path, rec.Body, err, tc.code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s %s: Cache-Control %q", tc.method, tc.path, cc)
		}
	}
}
