package configs_test

import (
	"fmt"

	"github.com/portcullis-auth/portcullis/configs"
)

func ExampleLoad() {
	// In main: configs.Load(configFlag, os.Environ(), flagsThatWereSet).
	environ := []string{"HOME=/root", "PORTCULLIS_ACCESS_TOKEN_TTL=5m"}
	flags := map[string]string{"keys.algorithm": "EdDSA"}

	cfg, err := configs.Load("testdata/example.yaml", environ, flags)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("issuer:", cfg.Issuer)            // from the file, slash trimmed
	fmt.Println("public_addr:", cfg.PublicAddr)   // from the file
	fmt.Println("ttl:", cfg.AccessTokenTTL)       // env beats file
	fmt.Println("algorithm:", cfg.Keys.Algorithm) // flag beats default
	fmt.Println("storage:", cfg.StorageDriver(), cfg.SQLitePath())

	_, err = configs.Load("", []string{"PORTCULLIS_ACCESS_TOKEN_TTL=fifteen"},
		map[string]string{"keys.algorithm": "HS256", "dsn": "mysql://u:p@tcp(db:3306)/p"})
	fmt.Println(err)
	// Output:
	// issuer: https://auth.example.com
	// public_addr: :8443
	// ttl: 5m0s
	// algorithm: EdDSA
	// storage: sqlite portcullis.db
	// env PORTCULLIS_ACCESS_TOKEN_TTL: invalid duration "fifteen": want a Go duration such as "30s", "15m" or "720h"
	// PORTCULLIS_SECRETS_KEY is required with a MySQL DSN: signing keys are stored encrypted in the shared database, so every replica needs the same key and none may generate its own; generate one with `openssl rand -base64 32`
	// keys.algorithm: unsupported signing algorithm "HS256" (want ES256, RS256 or EdDSA)
}
