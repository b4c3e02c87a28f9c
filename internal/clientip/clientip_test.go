package clientip_test

import (
	"net/http/httptest"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/clientip"
)

func TestIP(t *testing.T) {
	r, err := clientip.New([]string{"10.0.0.0/8", "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"untrusted peer cannot spoof", "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted proxy", "10.1.2.3:5000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"client-supplied prefix ignored", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"chain of trusted proxies", "10.1.2.3:5000", []string{"198.51.100.9, 192.168.1.1", "10.9.9.9"}, "198.51.100.9"},
		{"all trusted", "10.1.2.3:5000", []string{"10.0.0.1"}, "10.1.2.3"},
		{"malformed", "10.1.2.3:5000", []string{"not-an-ip"}, "10.1.2.3"},
		{"no header", "10.1.2.3:5000", nil, "10.1.2.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", nil)
			req.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := r.IP(req); got != tc.want {
				t.Fatalf("IP = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := clientip.New([]string{"nonsense"}); err == nil {
		t.Error("accepted a bad proxy")
	}
}

func TestLimitKey(t *testing.T) {
	r, _ := clientip.New(nil)
	for remote, want := range map[string]string{
		"203.0.113.7:1":                   "203.0.113.7",
		"[2001:db8:1:2:aaaa::1]:1":        "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff::9]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:1":             "2001:db8:1:3::/64",
	} {
		req := httptest.NewRequest("POST", "/", nil)
		req.RemoteAddr = remote
		if got := r.LimitKey(req); got != want {
			t.Errorf("LimitKey(%s) = %s, want %s", remote, got, want)
		}
	}
}
