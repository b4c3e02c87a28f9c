// Command dpop-client is the README's runnable DPoP example: a Go program
// that logs in with the password grant using DPoP (RFC 9449), so that its
// tokens are bound to a key only it holds, calls userapi's /users/me with
// them, and shows that the same access token sent as a plain Bearer token
// (as a thief would) is refused.
//
//	go run ./deploy/examples/dpop-client -client-id "$CLIENT_ID" -username alice -password-stdin <<< 'purple otter lamp 42'
//
// It uses golang.org/x/oauth2 for the OAuth and oauth/dpop's Transport for
// the proofs; nothing else.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dpop-client:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("dpop-client", flag.ContinueOnError)
	issuer := fs.String("issuer", "http://localhost:8080", "Portcullis issuer URL")
	userAPI := fs.String("userapi", "http://localhost:8090", "userapi base URL")
	clientID := fs.String("client-id", "", "a public client registered for the password grant (required)")
	username := fs.String("username", "", "user name (required)")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *clientID == "" || *username == "" || !*passwordStdin {
		return errors.New("-client-id, -username and -password-stdin are required")
	}
	password, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	password = strings.TrimRight(password, "\r\n")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := discover(ctx, *issuer)
	if err != nil {
		return err
	}
	if len(md.DPoPAlgs) == 0 {
		return errors.New("the server does not advertise DPoP (dpop_signing_alg_values_supported)")
	}

	// The key stays in this process; tokens are useless without it.
	key, err := dpop.GenerateKey()
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: dpop.NewTransport(key, http.DefaultTransport), Timeout: 10 * time.Second}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	conf := &oauth2.Config{ClientID: *clientID, Endpoint: oauth2.Endpoint{TokenURL: md.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := conf.PasswordCredentialsToken(ctx, *username, password)
	if err != nil {
		return fmt.Errorf("password grant: %w", err)
	}
	jkt, err := boundKey(tok.AccessToken)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "token_type: %s\n", tok.Type())
	fmt.Fprintf(stdout, "cnf.jkt:    %s (this program's key: %s)\n", jkt, key.Thumbprint())

	status, body, err := get(conf.Client(ctx, tok), *userAPI+"/users/me", "")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "GET /users/me with DPoP:   %d %s\n", status, body)
	stolen, _, err := get(http.DefaultClient, *userAPI+"/users/me", "Bearer "+tok.AccessToken)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "GET /users/me as Bearer:   %d (the token alone, without the key, is refused)\n", stolen)
	if tok.Type() != dpop.Scheme || jkt != key.Thumbprint() || status != http.StatusOK || stolen != http.StatusUnauthorized {
		return errors.New("the server did not behave as a DPoP server should")
	}
	return nil
}

// metadata is the part of the RFC 8414 document this program needs.
type metadata struct {
	TokenEndpoint string   `json:"token_endpoint"`
	DPoPAlgs      []string `json:"dpop_signing_alg_values_supported"`
}

func discover(ctx context.Context, issuer string) (*metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var md metadata
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md) != nil || md.TokenEndpoint == "" {
		return nil, fmt.Errorf("metadata: %s", resp.Status)
	}
	return &md, nil
}

// boundKey returns cnf.jkt of a JWT access token (not verified: this is
// for display; resource servers verify).
func boundKey(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	return c.Cnf.JKT, nil
}

func get(c *http.Client, url, authorization string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
