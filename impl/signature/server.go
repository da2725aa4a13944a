package signature

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The server half: orderhub verifies what callers send (VerifyRequest) and
// signs what it answers (Sealer), so both halves of the scheme, and their
// agreement on content and time format, live in this one package.

// Errors of request verification besides those of ParseHeader and Verify.
// They name the kind of failure so that callers can count and answer it
// without reading messages.
var (
	// ErrRequestTime: Request-Time is unreadable or outside the accepted
	// window, the replay protection. VerifyRequest wraps it with detail.
	ErrRequestTime = errors.New("signature: Request-Time outside the accepted window")
	// ErrUnknownKey: the Signature header names a key version the caller
	// has no active key for.
	ErrUnknownKey = errors.New("signature: no active key for this key version")
)

// FormatTime renders a Request-Time or Response-Time as ISO 8601 with
// offset (time.RFC3339), the form orderhub and Signer send: whole seconds,
// the clock's own offset, which every partner SDK reads.
func FormatTime(t time.Time) string {
	return t.Format(time.RFC3339)
}

// ParseTime reads a Request-Time: ISO 8601 with offset (RFC 3339), or epoch
// milliseconds as Ant's Go SDK sends. A time without offset is refused: its
// instant would depend on a zone nobody stated.
func ParseTime(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errors.New("Request-Time is neither ISO 8601 with offset nor epoch milliseconds")
	}
	return t, nil
}

// KeyLookup returns a caller's active public key of a version (0: the
// latest). It is a function so that this package needs no knowledge of how
// callers and their keys are stored.
type KeyLookup func(version int) (*rsa.PublicKey, bool)

// VerifyRequest checks a request of the caller clientID whose body was
// already read: its Signature header parses, names a key that keys knows,
// its Request-Time is within window of now, and the signature verifies over
// the method, escaped path, clientID, the Request-Time header exactly as
// received (not the parsed time: that is what the caller signed) and body.
//
// The checks run in that order, cheapest first, so the RSA work is done
// only for a request that could otherwise pass. Errors: ErrMalformed or
// ErrAlgorithm for the header; wrapping ErrUnknownKey for the key version;
// wrapping ErrRequestTime for an unreadable or out-of-window Request-Time;
// ErrMismatch for a signature that does not verify.
func VerifyRequest(req *http.Request, clientID string, body []byte, keys KeyLookup, window time.Duration, now time.Time) error {
	h, err := ParseHeader(req.Header.Get("Signature"))
	if err != nil {
		return err
	}
	key, ok := keys(h.KeyVersion)
	if !ok {
		return fmt.Errorf("%w: keyVersion %d", ErrUnknownKey, h.KeyVersion)
	}
	sent := req.Header.Get("Request-Time")
	at, err := ParseTime(sent)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRequestTime, err)
	}
	// Sub saturates, so a time centuries away is still out of the window.
	if d := now.Sub(at); d > window || d < -window {
		return fmt.Errorf("%w: Request-Time is %s away from the server clock", ErrRequestTime, d.Round(time.Second))
	}
	return Verify(key, Content(req.Method, req.URL.EscapedPath(), clientID, sent, body), h.Signature)
}

// Sealer signs orderhub's answers with its private key, so that callers can
// tell them from anyone else's (VerifyResponse is the other end).
type Sealer struct {
	Key *rsa.PrivateKey
	// KeyVersion is written in every answer's header as given; the caller
	// passes 1 or more (0 would leave keyVersion out, meaning "latest",
	// which partners' SDKs need not accept in a response).
	KeyVersion int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Seal signs body as the answer to method and path (escaped, as received)
// for clientID, then sets on h: Client-Id (deleted when clientID is empty),
// Response-Time and Signature. clientID is echoed as given: the caller
// decides what may be reflected. On failure h is left as it was.
func (s Sealer) Seal(h http.Header, method, path, clientID string, body []byte) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ts := FormatTime(now())
	sig, err := Sign(s.Key, Content(method, path, clientID, ts, body))
	if err != nil {
		return fmt.Errorf("signing the response: %w", err)
	}
	if clientID != "" {
		h.Set("Client-Id", clientID)
	} else {
		h.Del("Client-Id")
	}
	h.Set("Response-Time", ts)
	h.Set("Signature", Header{Algorithm: Algorithm, KeyVersion: s.KeyVersion, Signature: sig}.String())
	return nil
}
