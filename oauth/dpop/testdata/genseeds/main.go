// Command genseeds writes the seed corpus of FuzzParse
// (testdata/fuzz/FuzzParse): valid proofs of each key type, with and
// without ath and nonce, and the shapes of two refused ones. Run it from
// oauth/dpop: go run ./testdata/genseeds
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

func main() {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	seeds := map[string]string{}
	for name, priv := range map[string]crypto.Signer{"es256": ec, "es384": ec384, "eddsa": ed, "ps256": rs} {
		k, err := dpop.NewKey(priv)
		if err != nil {
			log.Fatal(err)
		}
		p, err := k.Proof("POST", "https://as.example/oauth2/token", "", "")
		if err != nil {
			log.Fatal(err)
		}
		seeds[name] = p
		p, _ = k.Proof("GET", "https://rs.example/users/me", "tok", "nonce")
		seeds[name+"-ath-nonce"] = p
	}
	sum := sha256.Sum256([]byte("x"))
	seeds["hs256"] = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkhTMjU2In0.e30." + base64.RawURLEncoding.EncodeToString(sum[:])
	seeds["none"] = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6Im5vbmUifQ.e30."
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
