package dpop_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// A Go program getting DPoP-bound tokens from Portcullis with the password
// grant and calling a resource server with them: golang.org/x/oauth2 does
// the OAuth, dpop.Transport adds a proof to every request (with ath on the
// resource requests) and handles server nonces. The key never leaves the
// program; a stolen token or refresh token is useless without it.
func Example_oauth2() {
	key, err := dpop.GenerateKey() // keep it for the life of the tokens
	if err != nil {
		log.Fatal(err)
	}
	hc := &http.Client{Transport: dpop.NewTransport(key, http.DefaultTransport)}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)

	conf := &oauth2.Config{
		ClientID: "my-public-client",
		Endpoint: oauth2.Endpoint{TokenURL: "http://localhost:8080/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	tok, err := conf.PasswordCredentialsToken(ctx, "alice", "correct horse battery staple")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Type()) // DPoP

	// Requests carry "Authorization: DPoP <token>" and a proof; the token
	// is refreshed, with a proof by the same key, when it expires.
	resp, err := conf.Client(ctx, tok).Get("http://localhost:8090/users/me")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
}
