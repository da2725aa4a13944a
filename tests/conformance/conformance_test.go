package conformance

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderhub/orderhub/tests/testkit"
)

// keys are orderhub's fixed test key and another.
func keys(t *testing.T) (orderhub, other *rsa.PrivateKey) {
	t.Helper()
	return testkit.Key(t, 0), testkit.Key(t, 1)
}

const envelope = `{"result":{"resultStatus":"F","resultCode":"INVALID_API","resultMessage":"The called API is invalid or not active."}}`

// signed is a response as orderhub should sign it, built by hand.
func signed(t *testing.T, key *rsa.PrivateKey, method, path, clientID string, body string) http.Header {
	t.Helper()
	ts := time.Now().Format(time.RFC3339)
	sum := sha256.Sum256([]byte(method + " " + path + "\n" + clientID + "." + ts + "." + body))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Response-Time", ts)
	if clientID != "" {
		h.Set("Client-Id", clientID)
	}
	h.Set("Signature", "algorithm=RSA256, keyVersion=1, signature="+url.QueryEscape(base64.StdEncoding.EncodeToString(sig)))
	return h
}

func request(t *testing.T, method, path, clientID string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://orderhub.test"+path, strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if clientID != "" {
		req.Header.Set("Client-Id", clientID)
	}
	return req
}

func TestCheckSignature(t *testing.T) {
	key, other := keys(t)
	const path = "/v2/pos/nope"
	edit := func(f func(h http.Header)) func(t *testing.T) http.Header {
		return func(t *testing.T) http.Header {
			h := signed(t, key, http.MethodPost, path, "c-1", envelope)
			f(h)
			return h
		}
	}
	for _, tc := range []struct {
		name     string
		clientID string // of the request
		header   func(t *testing.T) http.Header
		body     string
		ok       bool
	}{
		{name: "valid", clientID: "c-1", header: edit(func(http.Header) {}), body: envelope, ok: true},
		{name: "valid without Client-Id", header: func(t *testing.T) http.Header { return signed(t, key, http.MethodPost, path, "", envelope) }, body: envelope, ok: true},
		{name: "body changed", clientID: "c-1", header: edit(func(http.Header) {}), body: envelope + " "},
		{name: "no Signature", clientID: "c-1", header: edit(func(h http.Header) { h.Del("Signature") }), body: envelope},
		{name: "two Signatures", clientID: "c-1", header: edit(func(h http.Header) { h.Add("Signature", h.Get("Signature")) }), body: envelope},
		{name: "no Response-Time", clientID: "c-1", header: edit(func(h http.Header) { h.Del("Response-Time") }), body: envelope},
		{name: "Response-Time changed", clientID: "c-1", header: edit(func(h http.Header) {
			h.Set("Response-Time", time.Now().Add(time.Hour).Format(time.RFC3339))
		}), body: envelope},
		{name: "Client-Id not echoed", clientID: "c-1", header: edit(func(h http.Header) { h.Del("Client-Id") }), body: envelope},
		{name: "Client-Id on a response to a request without one", header: edit(func(http.Header) {}), body: envelope},
		{name: "pairs without spaces", clientID: "c-1", header: edit(func(h http.Header) {
			h.Set("Signature", strings.ReplaceAll(h.Get("Signature"), ", ", ","))
		}), body: envelope},
		{name: "pairs in another order", clientID: "c-1", header: edit(func(h http.Header) {
			p := strings.Split(h.Get("Signature"), ", ")
			h.Set("Signature", p[2]+", "+p[0]+", "+p[1])
		}), body: envelope},
		{name: "no keyVersion", clientID: "c-1", header: edit(func(h http.Header) {
			h.Set("Signature", strings.Replace(h.Get("Signature"), "keyVersion=1, ", "", 1))
		}), body: envelope},
		{name: "value not escaped", clientID: "c-1", header: edit(func(h http.Header) {
			v, _ := url.QueryUnescape(h.Get("Signature"))
			h.Set("Signature", v)
		}), body: envelope},
		{name: "signed with another key", clientID: "c-1", header: func(t *testing.T) http.Header {
			return signed(t, other, http.MethodPost, path, "c-1", envelope)
		}, body: envelope},
		{name: "signed for another path", clientID: "c-1", header: func(t *testing.T) http.Header {
			return signed(t, key, http.MethodPost, "/v2/pos/other", "c-1", envelope)
		}, body: envelope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSignature(&key.PublicKey, request(t, http.MethodPost, path, tc.clientID), tc.header(t), []byte(tc.body))
			if tc.ok && err != nil {
				t.Errorf("refused a valid response: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("accepted")
			}
		})
	}
}

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func TestTransportChecksSignatures(t *testing.T) {
	key, _ := keys(t)
	// answer serves the envelope, signed or not.
	answer := func(sign bool) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			h := http.Header{"Content-Type": {"application/json"}}
			if sign {
				h = signed(t, key, req.Method, req.URL.EscapedPath(), req.Header.Get("Client-Id"), envelope)
			}
			return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(bytes.NewReader([]byte(envelope))), Request: req}, nil
		})
	}
	registered := WithSignatureKey(&key.PublicKey, Clients("c-1"))
	for _, tc := range []struct {
		name      string
		opts      []Option
		sign      bool
		path      string
		clientID  string
		wantError bool
	}{
		{name: "unsigned partner response to a client, checked", opts: []Option{registered}, path: "/v2/pos/nope", clientID: "c-1", wantError: true},
		{name: "signed partner response to a client, checked", opts: []Option{registered}, sign: true, path: "/v2/pos/nope", clientID: "c-1"},
		{name: "unsigned partner response to a stranger, checked", opts: []Option{registered}, path: "/v2/pos/nope", clientID: "stranger"},
		{name: "signed partner response to a stranger, checked", opts: []Option{registered}, sign: true, path: "/v2/pos/nope", clientID: "stranger", wantError: true},
		{name: "unsigned operator response, checked", opts: []Option{registered}, path: "/ops/nope", clientID: "c-1"},
		{name: "unsigned partner response, New(t, base)", path: "/v2/pos/nope", clientID: "c-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			c := &http.Client{Transport: New(rec, answer(tc.sign), tc.opts...)}
			res, err := c.Do(request(t, http.MethodPost, tc.path, tc.clientID))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if got := len(rec.errs) > 0; got != tc.wantError {
				t.Errorf("errors reported %q, want some: %v", rec.errs, tc.wantError)
			}
		})
	}
}
