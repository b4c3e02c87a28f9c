package firstparty_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/firstparty"
)

// askUser stands for the app's own prompt.
func askUser(prompt string) string { return "123456" }

// A native app logs its user in: password first, then whatever the server
// asks for, with every request, the code and the tokens bound to the app's
// DPoP key.
func Example() {
	ctx := context.Background()
	key, err := dpop.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	c := &firstparty.Client{
		ChallengeURL: "https://auth.example.com/oauth2/authorize-challenge",
		TokenURL:     "https://auth.example.com/oauth2/token",
		ClientID:     "mobile-app",
		HTTPClient:   &http.Client{Transport: dpop.NewTransport(key, nil)},
	}
	tok, err := c.Login(ctx, firstparty.Credentials{Username: "alice", Password: "purple otter lamp 42"}, firstparty.Options{})
	for {
		var ch *firstparty.Challenge
		if !errors.As(err, &ch) {
			break
		}
		switch {
		case ch.EnrollmentRequired:
			fmt.Println("add this key to your authenticator app:", ch.OTPAuthURI)
			tok, err = c.Continue(ctx, ch, firstparty.Credentials{OTP: askUser("code")})
		case ch.OTPRequired:
			tok, err = c.Continue(ctx, ch, firstparty.Credentials{OTP: askUser("code")})
		case ch.PasswordRequired:
			tok, err = c.Continue(ctx, ch, firstparty.Credentials{Password: askUser("password")})
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	if len(tok.RecoveryCodes) > 0 {
		fmt.Println("keep these recovery codes:", tok.RecoveryCodes)
	}
	// Later, a resource server answers insufficient_user_authentication
	// with acr_values="2": step up on the session of these tokens.
	_, err = c.StepUp(ctx, tok.AuthSession, firstparty.Credentials{}, firstparty.Options{ACRValues: []string{"2"}})
	_ = err // a *firstparty.Challenge asking for a fresh code, as above
}
