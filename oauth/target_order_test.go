package oauth_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestInvalidTargetCostsNoPasswordAttempt: a password grant whose resource
// or audience the client may not ask for is refused (invalid_target)
// before its password is checked, like a bad scope: it costs no argon2id
// hash and counts no failed attempt, so it cannot lock the owner out.
// (Before: the password was checked first; six such requests with a
// wrong password locked the account, and the right password then got
// 429.)
func TestInvalidTargetCostsNoPasswordAttempt(t *testing.T) {
	e := newEnv(t, servertest.Options{})
	e.user(t, "erin")
	c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
	post := func(form url.Values) (int, string) {
		form.Set("grant_type", "password")
		form.Set("client_id", c.ID)
		form.Set("username", "erin")
		resp, err := http.Post(e.tokenURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := range 6 {
		for _, bad := range []url.Values{
			{"resource": {"https://elsewhere.example"}, "password": {"wrong password number"}},
			{"audience": {"https://elsewhere.example"}, "password": {"wrong password number"}},
		} {
			if code, body := post(bad); code != http.StatusBadRequest || !strings.Contains(body, `"invalid_target"`) {
				t.Fatalf("round %d: %d %s, want 400 invalid_target", i, code, body)
			}
		}
	}
	if code, body := post(url.Values{"password": {"purple otter lamp 42"}}); code != http.StatusOK {
		t.Fatalf("the owner after 12 refused requests: %d %s, want 200", code, body)
	}
}
