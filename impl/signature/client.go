package signature

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Signer signs outgoing requests as a registered caller. Its Edit method is
// a request editor of the generated client:
//
//	s := &signature.Signer{ClientID: "isv-1", KeyVersion: 1, Key: key}
//	c, err := client.NewClientWithResponses(url, client.WithRequestEditorFn(s.Edit))
type Signer struct {
	ClientID   string
	KeyVersion int // 0 leaves keyVersion out of the header: the latest key
	Key        *rsa.PrivateKey
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// EpochMillis sends Request-Time as epoch milliseconds, as Ant's Go SDK
	// does, instead of ISO 8601.
	EpochMillis bool
}

// Edit sets Client-Id, Request-Time and Signature on req, signing its exact
// body; the body stays readable.
func (s *Signer) Edit(_ context.Context, req *http.Request) error {
	body, err := readBody(&req.Body)
	if err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	at := now()
	ts := FormatTime(at)
	if s.EpochMillis {
		ts = fmt.Sprint(at.UnixMilli())
	}
	sig, err := Sign(s.Key, Content(req.Method, req.URL.EscapedPath(), s.ClientID, ts, body))
	if err != nil {
		return err
	}
	req.Header.Set("Client-Id", s.ClientID)
	req.Header.Set("Request-Time", ts)
	req.Header.Set("Signature", Header{Algorithm: Algorithm, KeyVersion: s.KeyVersion, Signature: sig}.String())
	return nil
}

// VerifyResponse checks orderhub's signature on a response whose body was
// already read (as the generated client's *WithResponse methods do): the
// Signature header must verify with key over the request's method and path,
// the response's Client-Id and Response-Time, and body.
func VerifyResponse(res *http.Response, body []byte, key *rsa.PublicKey) error {
	if res == nil || res.Request == nil {
		return errors.New("signature: response without its request")
	}
	raw := res.Header.Get("Signature")
	if raw == "" {
		return fmt.Errorf("%w: no Signature header", ErrMalformed)
	}
	h, err := ParseHeader(raw)
	if err != nil {
		return err
	}
	content := Content(res.Request.Method, res.Request.URL.EscapedPath(), res.Header.Get("Client-Id"), res.Header.Get("Response-Time"), body)
	return Verify(key, content, h.Signature)
}

// readBody reads *rc whole and puts an identical reader back.
func readBody(rc *io.ReadCloser) ([]byte, error) {
	if *rc == nil || *rc == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(*rc)
	(*rc).Close()
	if err != nil {
		return nil, err
	}
	*rc = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// Verifier is an http.RoundTripper for callers of orderhub: it checks every
// answer's signature with orderhub's public key (VerifyResponse) and fails
// the call when the answer is unsigned or does not verify, so that a suite
// cannot forget to. Every answer to a registered client is signed (the
// contract's Signatures section), so an unsigned one means the caller is
// not one, or the answer is not orderhub's.
//
//	hc := &http.Client{Transport: &signature.Verifier{Key: orderhubKey}}
//	c, err := client.NewClientWithResponses(url, client.WithHTTPClient(hc), client.WithRequestEditorFn(s.Edit))
type Verifier struct {
	Key  *rsa.PublicKey
	Base http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip sends req and returns the answer, its body readable again,
// only when orderhub's signature on it verifies.
func (v *Verifier) RoundTrip(req *http.Request) (*http.Response, error) {
	base := v.Base
	if base == nil {
		base = http.DefaultTransport
	}
	res, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := readBody(&res.Body)
	if err != nil {
		return nil, err
	}
	if res.Request == nil {
		res.Request = req
	}
	if err := VerifyResponse(res, body, v.Key); err != nil {
		return nil, fmt.Errorf("%s %s: the answer (HTTP %d) is not orderhub's: %w", req.Method, req.URL.Path, res.StatusCode, err)
	}
	return res, nil
}
