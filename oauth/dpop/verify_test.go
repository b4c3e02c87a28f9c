package dpop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

func TestRoundTrip(t *testing.T) {
	k, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, nil)})
	proof, err := k.Proof("POST", "https://AS.example:443/oauth2/token?x=1", "tok", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), proof, dpop.Request{Method: "POST", URI: "https://as.example/oauth2/token", AccessToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if p.JKT != k.Thumbprint() {
		t.Fatalf("jkt %q, key %q", p.JKT, k.Thumbprint())
	}
	_, err = v.Verify(context.Background(), proof, dpop.Request{Method: "POST", URI: "https://as.example/oauth2/token", AccessToken: "tok"})
	if !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	_ = time.Now
}
