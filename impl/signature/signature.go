// Package signature implements the Ant Group message signature: RSA256
// (RSASSA-PKCS1-v1_5 with SHA-256) over
//
//	<METHOD> <path>\n<Client-Id>.<Request-Time or Response-Time>.<body>
//
// carried in a header `algorithm=RSA256, keyVersion=N, signature=<escaped
// base64>`. It serves both sides: orderhub verifies requests and signs
// responses; test suites sign requests (Signer) and verify responses
// (VerifyResponse).
package signature

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Algorithm is the only algorithm the Ant APIs use.
const Algorithm = "RSA256"

// Errors of header parsing and verification. They say what kind of problem
// it is, never what the expected signature was.
var (
	ErrMalformed = errors.New("signature: malformed Signature header")
	ErrAlgorithm = errors.New("signature: unsupported algorithm")
	ErrMismatch  = errors.New("signature: signature does not verify")
)

// Content is the exact byte string that is signed.
func Content(method, path, clientID, timestamp string, body []byte) []byte {
	b := make([]byte, 0, len(method)+len(path)+len(clientID)+len(timestamp)+len(body)+4)
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, '\n')
	b = append(b, clientID...)
	b = append(b, '.')
	b = append(b, timestamp...)
	b = append(b, '.')
	b = append(b, body...)
	return b
}

// Sign returns the raw signature of content.
func Sign(key *rsa.PrivateKey, content []byte) ([]byte, error) {
	return signDigest(key, sha256.Sum256(content))
}

// signDigest signs the SHA-256 digest of some content.
func signDigest(key *rsa.PrivateKey, digest [sha256.Size]byte) ([]byte, error) {
	return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
}

// Verify checks a raw signature of content.
func Verify(key *rsa.PublicKey, content, sig []byte) error {
	sum := sha256.Sum256(content)
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig) != nil {
		return ErrMismatch
	}
	return nil
}

// Header is a parsed Signature header.
type Header struct {
	Algorithm string
	// KeyVersion is 0 when the header names none: the latest key then.
	KeyVersion int
	Signature  []byte
}

// String formats the header as the Java SDK reads it: algorithm, keyVersion,
// signature, in this order, the signature base64 and URL-escaped. A zero
// KeyVersion is left out (the receiver then uses the latest key).
func (h Header) String() string {
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(h.Signature))
	if h.KeyVersion == 0 {
		return fmt.Sprintf("algorithm=%s, signature=%s", h.Algorithm, sig)
	}
	return fmt.Sprintf("algorithm=%s, keyVersion=%d, signature=%s", h.Algorithm, h.KeyVersion, sig)
}

// ParseHeader reads `algorithm=RSA256, keyVersion=1, signature=<value>`:
// pairs in any order, spaces around them optional, keyVersion optional.
// The value is path-unescaped (a raw '+' stays a '+') and base64-decoded.
func ParseHeader(v string) (Header, error) {
	var h Header
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return Header{}, ErrMalformed
		}
		seen[k] = true
		switch k {
		case "algorithm":
			h.Algorithm = val
		case "keyVersion":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return Header{}, ErrMalformed
			}
			h.KeyVersion = n
		case "signature":
			unescaped, err := url.PathUnescape(val)
			if err != nil {
				return Header{}, ErrMalformed
			}
			sig, err := base64.StdEncoding.DecodeString(unescaped)
			if err != nil || len(sig) == 0 {
				return Header{}, ErrMalformed
			}
			h.Signature = sig
		default:
			return Header{}, ErrMalformed
		}
	}
	if h.Algorithm == "" || h.Signature == nil {
		return Header{}, ErrMalformed
	}
	if h.Algorithm != Algorithm {
		return Header{}, ErrAlgorithm
	}
	return h, nil
}
