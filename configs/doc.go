// Package configs loads and validates the configuration shared by every
// portcullis subcommand.
//
// The configuration is one typed struct, [Config]. [Load] builds it from four
// sources, each overriding the one before:
//
//  1. defaults ([Default]; every field's doc comment states its default),
//  2. a YAML file (the documented example is configs/portcullis.yaml),
//  3. environment variables,
//  4. overrides, normally command-line flags.
//
// Every key has a dotted path that follows the YAML nesting, such as "dsn",
// "public_addr" or "keys.algorithm". Overrides are keyed by that path. The
// environment variable for a key is "PORTCULLIS_" followed by the path in upper
// case with "." replaced by "_": PORTCULLIS_DSN, PORTCULLIS_KEYS_ALGORITHM,
// PORTCULLIS_KEYS_ROTATION_INTERVAL. The mapping is derived by reflection from
// the yaml struct tags, so a new field needs no code beyond its declaration.
//
// Values are written the same way in every source: durations as Go duration
// strings ("90s", "15m", "720h", "0"), booleans as "true" or "false" (in YAML
// the plain scalars true and false), integers in decimal, and string lists as a
// YAML sequence or, in the environment and flags, comma-separated.
//
// Strictness, in the manner of Caddy:
//
//   - An unknown or duplicated key in the YAML file is an error naming the key
//     by its dotted path and its line. A key whose value is empty (null) keeps
//     its default.
//   - An unknown override key is an error.
//   - Unknown PORTCULLIS_* environment variables are ignored, because other
//     tools share the prefix (PORTCULLIS_TEST_MYSQL_DSN, a wrapper script's
//     PORTCULLIS_CONFIG). An environment variable set to the empty string is
//     treated as unset, so that `PORTCULLIS_SECRETS_KEY=${KEY}` in a compose
//     file with KEY undefined does not override the file.
//   - [Config.Validate] checks every field and reports every problem at once,
//     joined with [errors.Join]; [Load] also reports every parse error from
//     every source in the same error.
//
// Secrets never appear in errors, in [Config.String] or in [Config.LogValue]:
// secrets_key and secrets_key_old are redacted, and so is the password in a
// MySQL DSN. Domain packages do not import this package; cmd/portcullis copies
// the fields they need into their own option structs.
package configs
