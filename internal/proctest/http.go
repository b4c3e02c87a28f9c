package proctest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Response is a whole HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object, failing the test if it is not
// one.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.Status, r.Body, err)
	}
	return m
}

// Do sends one request with the Content-Type contentType (none when
// empty) and header, given as name, value pairs, and reads the whole
// answer. It fails the test when no answer arrives.
func Do(t testing.TB, method, url, contentType string, body io.Reader, header ...string) Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// PostForm posts body, sent as is (malformed on purpose, if the test
// wants), as application/x-www-form-urlencoded, with header as in Do.
func PostForm(t testing.TB, url, body string, header ...string) Response {
	t.Helper()
	return Do(t, http.MethodPost, url, "application/x-www-form-urlencoded", strings.NewReader(body), header...)
}

// GetJSON fetches url with header and returns the status, the response
// header and the body decoded as a JSON object (nil when empty). It fails
// the test when the body is something else.
func GetJSON(t testing.TB, url string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	return GetJSONVia(t, http.DefaultClient, url, header)
}

// GetJSONVia is GetJSON sending the request with client (for example one
// whose Transport signs DPoP proofs).
func GetJSONVia(t testing.TB, client *http.Client, url string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET %s: %d, not a JSON object: %q", url, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, resp.Header, m
}

// BasicAuth returns the Authorization header value authenticating a client
// with HTTP Basic: its ID and secret form-encoded, then base64 (RFC 6749
// §2.3.1).
func BasicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// Token is an RFC 6749 §5.1 token response.
type Token struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// MustToken decodes a token endpoint response, failing the test unless it
// is a 200 with an access token.
func MustToken(t testing.TB, r Response) Token {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("token request: %d %s", r.Status, r.Body)
	}
	var tok Token
	if err := json.Unmarshal(r.Body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response %s: %v", r.Body, err)
	}
	return tok
}

// DecodeJWT decodes a compact JWS's header and claims without verifying
// the signature, failing the test if it is malformed.
func DecodeJWT(t testing.TB, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return header, claims
}
