package dpop_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// TestProofFromHeaderServerRequest: net/http stores a received "DPoP"
// header under its canonical key "Dpop"; ProofFromHeader must find it
// there (and count it), whatever case the client sent.
func TestProofFromHeaderServerRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []string // names under which "proof" is sent
		wantErr error
	}{
		{"DPoP", []string{"DPoP"}, nil},
		{"lower case", []string{"dpop"}, nil},
		{"none", nil, dpop.ErrMissing},
		{"two, different case", []string{"DPoP", "dpop"}, dpop.ErrMultiple},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got string
			var gotErr error
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, gotErr = dpop.ProofFromHeader(r.Header)
			}))
			defer srv.Close()
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.headers {
				req.Header[h] = append(req.Header[h], "proof") // sent as written
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tt.wantErr != nil {
				if !errors.Is(gotErr, tt.wantErr) {
					t.Fatalf("ProofFromHeader = %q, %v; want %v", got, gotErr, tt.wantErr)
				}
				return
			}
			if gotErr != nil || got != "proof" {
				t.Fatalf("ProofFromHeader = %q, %v; want the proof", got, gotErr)
			}
		})
	}
}
