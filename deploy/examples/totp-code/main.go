// Command totp-code prints the current TOTP code (RFC 6238: SHA-1, 6
// digits, 30 s) of a base32 secret, as an authenticator app shows it. The
// README's first-party walkthrough uses it in place of a phone:
//
//	go run ./deploy/examples/totp-code "$SECRET"
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/pquerna/otp/totp"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: totp-code BASE32-SECRET")
		os.Exit(2)
	}
	code, err := totp.GenerateCode(os.Args[1], time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "totp-code: the secret is not valid base32")
		os.Exit(1)
	}
	fmt.Println(code)
}
