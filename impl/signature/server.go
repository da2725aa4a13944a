package signature

import (
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
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
	// Memo, when set, reuses the signatures of this second (nil: none).
	Memo *Memo
}

// Sealed says how Seal sealed an answer.
type Sealed int

// The ways an answer is sealed.
const (
	Signed   Sealed = iota + 1 // an RSA signature was made
	Reused                     // the signature of identical content this second was reused
	Withheld                   // allow refused the RSA work: the answer is unsigned
)

// Seal signs body as the answer to method and path (escaped, as received)
// for clientID, then sets on h: Client-Id (deleted when clientID is empty),
// Response-Time and Signature. clientID is echoed as given: the caller
// decides what may be reflected. allow (nil: always) is asked before any
// RSA work; when it refuses, h gets Client-Id and Response-Time but no
// Signature. On error h is left as it was.
func (s Sealer) Seal(h http.Header, method, path, clientID string, body []byte, allow func() bool) (Sealed, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ts := FormatTime(now())
	digest := sha256.Sum256(Content(method, path, clientID, ts, body))
	sig, how := s.Memo.get(ts, digest), Reused
	if sig == nil {
		if allow != nil && !allow() {
			setEcho(h, clientID, ts)
			return Withheld, nil
		}
		var err error
		if sig, err = signDigest(s.Key, digest); err != nil {
			return 0, fmt.Errorf("signing the response: %w", err)
		}
		s.Memo.put(ts, digest, sig)
		how = Signed
	}
	setEcho(h, clientID, ts)
	h.Set("Signature", Header{Algorithm: Algorithm, KeyVersion: s.KeyVersion, Signature: sig}.String())
	return how, nil
}

func setEcho(h http.Header, clientID, ts string) {
	if clientID != "" {
		h.Set("Client-Id", clientID)
	} else {
		h.Del("Client-Id")
	}
	h.Set("Response-Time", ts)
}

// memoSize bounds a Memo: past it, a second's further signatures are made
// but not kept.
const memoSize = 4096

// Memo remembers the signatures a Sealer made within the current
// Response-Time second. PKCS#1 v1.5 is deterministic, so content signed again
// in that second would get the very same bytes: the identical S envelopes of
// one caller, or a flood of identical refusals, cost one signature a second.
// One Memo serves one Sealer (one key). The zero value is ready; a nil *Memo
// remembers nothing.
type Memo struct {
	mu     sync.Mutex
	second string // the Response-Time the signatures are for
	sigs   map[[sha256.Size]byte][]byte
}

func (m *Memo) get(ts string, digest [sha256.Size]byte) []byte {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.second != ts {
		return nil
	}
	return m.sigs[digest]
}

func (m *Memo) put(ts string, digest [sha256.Size]byte, sig []byte) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.second != ts {
		m.second, m.sigs = ts, make(map[[sha256.Size]byte][]byte)
	}
	if len(m.sigs) < memoSize {
		m.sigs[digest] = sig
	}
}
