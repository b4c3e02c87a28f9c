package jws

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Sentinel errors wrapped by [Parse] and [DecodeObject].
var (
	// ErrNotCompact: the token is not three non-empty base64url segments
	// separated by dots (JSON serialization, JWE, whitespace, padding).
	ErrNotCompact = errors.New("jws: not a compact JWS")
	// ErrMalformed: a segment does not decode, the header is not a JSON
	// object or repeats a member name, or there is not exactly one
	// signature.
	ErrMalformed = errors.New("jws: malformed")
	// ErrAlgorithm: the header's alg is not in the allow-list (or the
	// allow-list is empty).
	ErrAlgorithm = errors.New("jws: algorithm not allowed")
	// ErrCritical: the header has a crit or b64 member (RFC 7515 §4.1.11,
	// RFC 7797); no extension is understood.
	ErrCritical = errors.New("jws: critical header parameters")
	// ErrType: the header's typ is missing, not a string, or none of the
	// expected types.
	ErrType = errors.New("jws: unexpected typ")
	// ErrDuplicateMember is wrapped by DecodeObject (and so, with
	// ErrMalformed, by Parse) for a repeated member name.
	ErrDuplicateMember = errors.New("jws: duplicate member")
)

// Parse parses token, a JWS in compact serialization, whose alg must be
// one of algs and whose typ must equal one of types, compared without
// regard to case (RFC 8725 §3.11; media type names are case-insensitive).
// The values are compared as given: a caller that accepts the
// "application/" form of a type (RFC 7515 §4.1.9) lists it. With no types,
// every token is refused.
//
// Checks run in this order, and the error wraps the sentinel of the first
// that fails: [ErrNotCompact], [ErrAlgorithm] (empty algs), [ErrAlgorithm]
// or [ErrMalformed] from decoding, [ErrMalformed] (duplicate header member,
// which also wraps [ErrDuplicateMember]), [ErrCritical], [ErrType].
//
// The signature is not verified: the caller verifies the returned object
// with the key it trusts (obj.Verify), after checking that the key fits
// the header's alg. The returned header is the protected header of the
// one signature.
func Parse(token string, algs []jose.SignatureAlgorithm, types ...string) (*jose.JSONWebSignature, jose.Header, error) {
	headerB64, ok := compactHeader(token)
	if !ok {
		return nil, jose.Header{}, ErrNotCompact
	}
	if len(algs) == 0 {
		return nil, jose.Header{}, fmt.Errorf("%w: no algorithm is allowed", ErrAlgorithm)
	}
	obj, err := jose.ParseSignedCompact(token, algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, jose.Header{}, fmt.Errorf("%w: %w", ErrAlgorithm, err)
		}
		return nil, jose.Header{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(obj.Signatures) != 1 {
		return nil, jose.Header{}, fmt.Errorf("%w: want exactly one signature", ErrMalformed)
	}
	if err := checkHeader(headerB64, types); err != nil {
		return nil, jose.Header{}, err
	}
	return obj, obj.Signatures[0].Protected, nil
}

// compactHeader reports whether token is three non-empty base64url
// (unpadded) segments and returns the first, the protected header.
func compactHeader(token string) (header string, ok bool) {
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", false
		}
	}
	if dots != 2 {
		return "", false
	}
	header, rest, _ := strings.Cut(token, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	if header == "" || payload == "" || sig == "" {
		return "", false
	}
	return header, true
}

// checkHeader checks the protected header members go-jose does not: no
// duplicate names, no crit or b64, and typ one of types.
func checkHeader(headerB64 string, types []string) error {
	b, err := base64.RawURLEncoding.DecodeString(headerB64)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	h, err := DecodeObject(b)
	if err != nil {
		return fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if _, ok := h["crit"]; ok {
		return ErrCritical
	}
	if _, ok := h["b64"]; ok {
		return ErrCritical
	}
	var typ string
	if raw, ok := h["typ"]; !ok || json.Unmarshal(raw, &typ) != nil {
		return ErrType
	}
	for _, t := range types {
		if strings.EqualFold(typ, t) {
			return nil
		}
	}
	return ErrType
}

// DecodeObject decodes a JSON object, such as a JOSE header or a JWT
// claims set, into its members, compared exactly (after unescaping; never
// case-insensitively). It fails on anything but one object, and on
// duplicate member names (wrapping [ErrDuplicateMember]), which RFC 7515 §4
// and RFC 7519 §4 allow a parser to refuse rather than resolve: a token
// whose readers could disagree on a member is not accepted. Nested values
// are not checked for duplicates.
func DecodeObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage, 16)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string) // a member name is always a string
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("%w %.64q", ErrDuplicateMember, name)
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}
