package contract

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/conformance"
	"github.com/orderhub/orderhub/tests/testkit"
)

// The security of the partner APIs: who may call (Client-Id), proof that
// the caller sent these very bytes (Signature over method, path, Client-Id,
// Request-Time and body), freshness (Request-Time within the window), what
// the caller may call (the registry's operations), and orderhub's own
// signature on every answer. Every response below also passes through the
// conformance transport, which verifies orderhub's signature on it.

const (
	codeInvalidSignature = "INVALID_SIGNATURE"
	codeAccessDenied     = "ACCESS_DENIED"
)

// Suffixes of the extra clients securityRegistry registers next to
// env.clientID.
const (
	suffixB           = "-b"            // every operation, the alt key
	suffixDisabled    = "-disabled"     // every operation, the client key, disabled
	suffixInquireOnly = "-inquire-only" // inquireOrderDetail only, the client key
	suffixNotifyOnly  = "-notify-only"  // the notifications only, the client key
)

func securityRegistry(t testing.TB, id string, k testKeys, ops []string) []clients.Entry {
	v1 := func(key *rsa.PrivateKey) []clients.KeyEntry { return []clients.KeyEntry{keyEntry(t, 1, key)} }
	return []clients.Entry{
		{ClientID: id, Operations: ops, Keys: v1(k.client)},
		{ClientID: id + suffixB, Operations: ops, Keys: v1(k.alt)},
		{ClientID: id + suffixDisabled, Disabled: true, Operations: ops, Keys: v1(k.client)},
		{ClientID: id + suffixInquireOnly, Operations: []string{"inquireOrderDetail"}, Keys: v1(k.client)},
		{ClientID: id + suffixNotifyOnly, Operations: []string{"notifyDeliveryAuditResult", "notifyOrderChange", "notifyOrderCompletion"}, Keys: v1(k.client)},
	}
}

// secOp is a partner operation as the security tests drive it.
type secOp struct {
	id        string
	path      string
	otherPath string // another partner API, for signatures made for the wrong path
	// prepare makes a valid request body and returns it with a func that
	// reports whether the request took effect.
	prepare func(t *testing.T, e *env) (body []byte, effect func() bool)
	// writes: a processed request has a visible effect.
	writes bool
	// allowedOnly and notAllowed are client suffixes (securityRegistry)
	// that may, and may not, call the operation.
	allowedOnly, notAllowed string
}

func secOps() []secOp {
	return []secOp{
		{
			id: "notifyOrderCompletion", path: pathCompletion, otherPath: pathInquire, writes: true,
			allowedOnly: suffixNotifyOnly, notAllowed: suffixInquireOnly,
			prepare: func(t *testing.T, e *env) ([]byte, func() bool) {
				id := e.newOrder(models.OrderStatusPreparing)
				body := mustJSON(t, models.NotifyOrderCompletionRequest{RequestID: uid("req"), RequestOrderID: id})
				return body, func() bool { return e.orderStatus(id) != models.OrderStatusPreparing }
			},
		},
		{
			id: "inquireOrderDetail", path: pathInquire, otherPath: pathCompletion,
			allowedOnly: suffixInquireOnly, notAllowed: suffixNotifyOnly,
			prepare: func(t *testing.T, e *env) ([]byte, func() bool) {
				id := e.newOrder(models.OrderStatusAccepted)
				v := e.version(id)
				return mustJSON(t, models.InquireOrderDetailRequest{RequestOrderID: id}), func() bool { return e.version(id) != v }
			},
		},
		{
			id: "notifyOrderChange", path: pathChange, otherPath: pathInquire, writes: true,
			allowedOnly: suffixNotifyOnly, notAllowed: suffixInquireOnly,
			prepare: func(t *testing.T, e *env) ([]byte, func() bool) {
				id := e.newOrder(models.OrderStatusAccepted)
				status := models.ChangedOrderStatusPreparing
				body := mustJSON(t, models.NotifyOrderChangeRequest{RequestID: uid("req"), RequestOrderID: id, OrderStatus: &status})
				return body, func() bool { return e.orderStatus(id) != models.OrderStatusAccepted }
			},
		},
		{
			id: "notifyDeliveryAuditResult", path: pathAudit, otherPath: pathCompletion, writes: true,
			allowedOnly: suffixNotifyOnly, notAllowed: suffixInquireOnly,
			prepare: func(t *testing.T, e *env) ([]byte, func() bool) {
				trade := uid("trade")
				body := mustJSON(t, models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: trade, DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept})
				return body, func() bool { return len(e.audits(trade)) != 0 }
			},
		},
	}
}

// signerWith is a copy of e's signer, changed by edit.
func (e *env) signerWith(edit func(s *signature.Signer)) *signature.Signer {
	s := *e.signer
	edit(&s)
	return &s
}

// signedHeaders are the headers s sets on a POST of body to path.
func (e *env) signedHeaders(s *signature.Signer, path string, body []byte) http.Header {
	e.t.Helper()
	req := e.request(http.MethodPost, path, "application/json; charset=UTF-8", body)
	if err := s.Edit(e.ctx(), req); err != nil {
		e.t.Fatalf("signing: %v", err)
	}
	return req.Header
}

// post sends body to path with exactly the headers h (a JSON Content-Type
// added when h has none).
func (e *env) post(path string, body []byte, h http.Header) reply {
	e.t.Helper()
	req := e.request(http.MethodPost, path, "", body)
	for k, v := range h {
		req.Header[k] = v
	}
	if _, ok := req.Header["Content-Type"]; !ok {
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	}
	return e.do(req)
}

// signatureValue is the value of the signature pair of a Signature header.
func signatureValue(header string) string {
	for _, p := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "signature="); ok {
			return v
		}
	}
	return ""
}

// secrets are strings a refusal's resultMessage must not contain: the
// signature the request should have carried (made with each registered
// key), the one it did carry, and pieces of every key of the suite.
func secrets(t *testing.T, e *env, path string, h http.Header, body []byte) []string {
	t.Helper()
	var out []string
	content := signature.Content(http.MethodPost, path, h.Get("Client-Id"), h.Get("Request-Time"), body)
	for _, k := range []*rsa.PrivateKey{e.keys.client, e.keys.alt} {
		sig, err := signature.Sign(k, content)
		if err != nil {
			t.Fatal(err)
		}
		b64 := base64.StdEncoding.EncodeToString(sig)
		out = append(out, b64[:16], b64[160:176], url.QueryEscape(b64)[:16])
	}
	if v := signatureValue(h.Get("Signature")); len(v) >= 16 {
		out = append(out, v[:16])
	}
	for _, k := range []*rsa.PrivateKey{e.keys.client, e.keys.alt, e.keys.stranger, e.keys.orderhub} {
		pub, err := signature.MarshalPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := signature.MarshalPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		// Past the DER prefix that every 2048-bit key shares.
		out = append(out, pub[64:96], priv[200:232])
	}
	return out
}

// wantRefusedWithoutEffect sends body with h and checks the refusal: HTTP
// 200, F/code, no secret in the message, no effect committed. Then it sends
// the very same body properly signed by e's client and checks it is
// processed: the refusal left nothing behind (its requestId is not taken)
// and the request was refused for the headers alone.
func wantRefusedWithoutEffect(t *testing.T, e *env, op secOp, body []byte, effect func() bool, h http.Header, code string) {
	t.Helper()
	before := e.effects()
	r := e.post(op.path, body, h)
	r.wantResult(t, http.StatusOK, models.ResultStatusFailure, code, secrets(t, e, op.path, h, body)...)
	if got := e.effects(); got != before {
		t.Errorf("a refused request committed %d effects", got-before)
	}
	if effect() {
		t.Errorf("a refused request took effect")
	}
	ok := e.post(op.path, body, e.signedHeaders(e.signer, op.path, body))
	ok.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	if op.writes && !effect() {
		t.Errorf("the properly signed request took no effect")
	}
}

// attack is a way to get a request refused: headers that do not fit body.
type attack struct {
	name   string
	code   string
	sample bool // run on all three operations, not only notifyOrderCompletion
	build  func(t *testing.T, e *env, op secOp, body []byte) http.Header
}

// withSigner signs with e's signer changed by edit.
func withSigner(edit func(e *env, op secOp, s *signature.Signer)) func(*testing.T, *env, secOp, []byte) http.Header {
	return func(t *testing.T, e *env, op secOp, body []byte) http.Header {
		s := e.signerWith(func(s *signature.Signer) { edit(e, op, s) })
		return e.signedHeaders(s, op.path, body)
	}
}

// signedThen signs properly, then changes the headers.
func signedThen(edit func(e *env, h http.Header)) func(*testing.T, *env, secOp, []byte) http.Header {
	return func(t *testing.T, e *env, op secOp, body []byte) http.Header {
		h := e.signedHeaders(e.signer, op.path, body)
		edit(e, h)
		return h
	}
}

// badHeader replaces the Signature header; f gets the proper header's
// escaped signature value.
func badHeader(f func(value string) string) func(*testing.T, *env, secOp, []byte) http.Header {
	return signedThen(func(e *env, h http.Header) { h.Set("Signature", f(signatureValue(h.Get("Signature")))) })
}

func attacks() []attack {
	sig := func(s string) func(string) string { return func(string) string { return s } }
	return []attack{
		{
			name: "tampered body (signed another request's body)", code: codeInvalidSignature, sample: true,
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				other, _ := op.prepare(t, e)
				return e.signedHeaders(e.signer, op.path, other)
			},
		},
		{
			name: "tampered body (signed with one more space)", code: codeInvalidSignature,
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				return e.signedHeaders(e.signer, op.path, append([]byte(" "), body...))
			},
		},
		{
			name: "tampered path (signed for another API)", code: codeInvalidSignature, sample: true,
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				return e.signedHeaders(e.signer, op.otherPath, body)
			},
		},
		{
			// B is registered with another key: the signature is A's.
			name: "tampered Client-Id (signed as this client, sent as another)", code: codeInvalidSignature, sample: true,
			build: signedThen(func(e *env, h http.Header) { h.Set("Client-Id", e.clientID+suffixB) }),
		},
		{
			name: "tampered Request-Time (one second later)", code: codeInvalidSignature, sample: true,
			build: signedThen(func(e *env, h http.Header) {
				at, err := time.Parse(time.RFC3339, h.Get("Request-Time"))
				if err != nil {
					e.t.Fatal(err)
				}
				h.Set("Request-Time", at.Add(time.Second).Format(time.RFC3339))
			}),
		},
		{
			// The same instant, written otherwise: signed as received.
			name: "Request-Time re-encoded as epoch milliseconds", code: codeInvalidSignature,
			build: signedThen(func(e *env, h http.Header) {
				at, err := time.Parse(time.RFC3339, h.Get("Request-Time"))
				if err != nil {
					e.t.Fatal(err)
				}
				h.Set("Request-Time", strconv.FormatInt(at.UnixMilli(), 10))
			}),
		},
		{name: "Request-Time missing", code: codeInvalidSignature, build: signedThen(func(_ *env, h http.Header) { h.Del("Request-Time") })},
		{name: "Request-Time not a time", code: codeInvalidSignature, build: signedThen(func(_ *env, h http.Header) { h.Set("Request-Time", "yesterday") })},
		{
			name: "stale Request-Time (now - 6 min)", code: codeInvalidSignature, sample: true,
			build: withSigner(func(_ *env, _ secOp, s *signature.Signer) {
				s.Now = func() time.Time { return time.Now().Add(-6 * time.Minute) }
			}),
		},
		{
			name: "future Request-Time (now + 6 min)", code: codeInvalidSignature, sample: true,
			build: withSigner(func(_ *env, _ secOp, s *signature.Signer) {
				s.Now = func() time.Time { return time.Now().Add(6 * time.Minute) }
			}),
		},
		{
			name: "stale epoch-millisecond Request-Time (now - 6 min)", code: codeInvalidSignature,
			build: withSigner(func(_ *env, _ secOp, s *signature.Signer) {
				s.EpochMillis = true
				s.Now = func() time.Time { return time.Now().Add(-6 * time.Minute) }
			}),
		},
		{
			name: "unknown keyVersion", code: codeInvalidSignature, sample: true,
			build: withSigner(func(_ *env, _ secOp, s *signature.Signer) { s.KeyVersion = 7 }),
		},
		{
			name: "wrong key (registered nowhere)", code: codeInvalidSignature, sample: true,
			build: withSigner(func(e *env, _ secOp, s *signature.Signer) { s.Key = e.keys.stranger }),
		},
		{
			name: "wrong key (another client's)", code: codeInvalidSignature,
			build: withSigner(func(e *env, _ secOp, s *signature.Signer) { s.Key = e.keys.alt }),
		},
		{
			name: "truncated signature", code: codeInvalidSignature,
			build: badHeader(func(v string) string {
				raw, _ := url.QueryUnescape(v)
				b, _ := base64.StdEncoding.DecodeString(raw)
				return "algorithm=RSA256, keyVersion=1, signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(b[:len(b)-1]))
			}),
		},
		{name: "Signature header missing", code: codeInvalidSignature, sample: true, build: signedThen(func(_ *env, h http.Header) { h.Del("Signature") })},
		{name: "Signature header empty", code: codeInvalidSignature, build: badHeader(sig(""))},
		{name: "malformed: no signature pair", code: codeInvalidSignature, build: badHeader(sig("algorithm=RSA256, keyVersion=1"))},
		{name: "malformed: no algorithm pair", code: codeInvalidSignature, build: badHeader(func(v string) string { return "keyVersion=1, signature=" + v })},
		{name: "malformed: algorithm=RSA512", code: codeInvalidSignature, sample: true, build: badHeader(func(v string) string { return "algorithm=RSA512, keyVersion=1, signature=" + v })},
		{name: "malformed: empty signature value", code: codeInvalidSignature, build: badHeader(sig("algorithm=RSA256, keyVersion=1, signature="))},
		{name: "malformed: bad base64", code: codeInvalidSignature, build: badHeader(sig("algorithm=RSA256, keyVersion=1, signature=n0t*base64!"))},
		{name: "malformed: bad URL escaping %2", code: codeInvalidSignature, build: badHeader(func(v string) string { return "algorithm=RSA256, keyVersion=1, signature=" + v + "%2" })},
		{name: "malformed: duplicate signature pair", code: codeInvalidSignature, build: badHeader(func(v string) string {
			return "algorithm=RSA256, keyVersion=1, signature=" + v + ", signature=" + v
		})},
		{name: "malformed: duplicate algorithm pair", code: codeInvalidSignature, build: badHeader(func(v string) string {
			return "algorithm=RSA256, algorithm=RSA256, keyVersion=1, signature=" + v
		})},
		{name: "malformed: duplicate keyVersion pair", code: codeInvalidSignature, build: badHeader(func(v string) string {
			return "algorithm=RSA256, keyVersion=1, keyVersion=1, signature=" + v
		})},
		{name: "malformed: keyVersion not a number", code: codeInvalidSignature, build: badHeader(func(v string) string {
			return "algorithm=RSA256, keyVersion=one, signature=" + v
		})},
		{name: "malformed: keyVersion=0", code: codeInvalidSignature, build: badHeader(func(v string) string {
			return "algorithm=RSA256, keyVersion=0, signature=" + v
		})},
		{name: "malformed: garbage", code: codeInvalidSignature, sample: true, build: badHeader(sig("garbage"))},
		{name: "malformed: only commas", code: codeInvalidSignature, build: badHeader(sig(",,,"))},
		{name: "malformed: a bearer token", code: codeInvalidSignature, build: badHeader(sig("Bearer abc.def.ghi"))},

		// Identity: checked before the signature.
		{
			name: "unknown client (signed as it)", code: codeAccessDenied, sample: true,
			build: withSigner(func(e *env, _ secOp, s *signature.Signer) { s.ClientID = "n0-such-client-" + e.clientID }),
		},
		{
			name: "unknown client with a bad signature", code: codeAccessDenied,
			build: signedThen(func(e *env, h http.Header) {
				h.Set("Client-Id", "n0-such-client-"+e.clientID)
				h.Set("Signature", "garbage")
			}),
		},
		{
			name: "disabled client (properly signed)", code: codeAccessDenied, sample: true,
			build: withSigner(func(e *env, _ secOp, s *signature.Signer) { s.ClientID = e.clientID + suffixDisabled }),
		},
		{name: "Client-Id missing", code: codeAccessDenied, sample: true, build: signedThen(func(_ *env, h http.Header) { h.Del("Client-Id") })},
		{name: "Client-Id empty", code: codeAccessDenied, build: signedThen(func(_ *env, h http.Header) { h.Set("Client-Id", "") })},

		// Permission: checked after the signature.
		{
			name: "operation not allowed for the client (properly signed)", code: codeAccessDenied, sample: true,
			build: withSigner(func(e *env, op secOp, s *signature.Signer) { s.ClientID = e.clientID + op.notAllowed }),
		},
		{
			name: "operation not allowed for the client, and a bad signature", code: codeInvalidSignature,
			build: withSigner(func(e *env, op secOp, s *signature.Signer) {
				s.ClientID = e.clientID + op.notAllowed
				s.Key = e.keys.stranger
			}),
		},
	}
}

func TestRefusedRequests(t *testing.T) {
	shared := newEnv(t, withRegistry(securityRegistry))
	for _, op := range secOps() {
		for _, a := range attacks() {
			// Every attack on one operation, a sample on the others; on
			// Redis Clusters, whose run is about the store, the sample alone.
			if (op.id != "notifyOrderCompletion" || clusterMode()) && !a.sample {
				continue
			}
			t.Run(op.id+"/"+a.name, func(t *testing.T) {
				e := shared.sub(t)
				body, effect := op.prepare(t, e)
				wantRefusedWithoutEffect(t, e, op, body, effect, a.build(t, e, op, body), a.code)
			})
		}
	}
}

// TestCheckOrder: identity, then signature, then permission, then the
// request itself. A caller that fails an earlier check learns nothing of the
// later ones.
func TestCheckOrder(t *testing.T) {
	e0 := newEnv(t, withRegistry(securityRegistry))
	op := secOps()[0] // notifyOrderCompletion
	missingField := func(t *testing.T, e *env) []byte {
		return []byte(`{"requestOrderId":"` + e.newOrder(models.OrderStatusPreparing) + `"}`)
	}
	notJSON := func(t *testing.T, e *env) []byte {
		return []byte(`{"requestId":"` + uid("req") + `","requestOrderId":"` + e.newOrder(models.OrderStatusPreparing) + `"`)
	}
	unknown := func(e *env, s *signature.Signer) { s.ClientID = "n0-such-client-" + e.clientID }
	badSig := func(e *env, s *signature.Signer) { s.Key = e.keys.stranger }
	notAllowed := func(e *env, s *signature.Signer) { s.ClientID = e.clientID + op.notAllowed }
	none := func(*env, *signature.Signer) {}
	for _, tc := range []struct {
		name   string
		body   func(t *testing.T, e *env) []byte
		signer func(e *env, s *signature.Signer)
		code   string
	}{
		{"unknown client, body missing a field", missingField, unknown, codeAccessDenied},
		{"bad signature, body missing a field", missingField, badSig, codeInvalidSignature},
		{"operation not allowed, body missing a field", missingField, notAllowed, codeAccessDenied},
		{"properly signed, body missing a field", missingField, none, "PARAM_ILLEGAL"},
		{"unknown client, body not JSON", notJSON, unknown, codeAccessDenied},
		{"bad signature, body not JSON", notJSON, badSig, codeInvalidSignature},
		{"operation not allowed, body not JSON", notJSON, notAllowed, codeAccessDenied},
		{"properly signed, body not JSON", notJSON, none, "PARAM_ILLEGAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e0.sub(t)
			body := tc.body(t, e)
			before := e.effects()
			h := e.signedHeaders(e.signerWith(func(s *signature.Signer) { tc.signer(e, s) }), op.path, body)
			e.post(op.path, body, h).wantResult(t, http.StatusOK, models.ResultStatusFailure, tc.code, secrets(t, e, op.path, h, body)...)
			if got := e.effects(); got != before {
				t.Errorf("a refused request committed %d effects", got-before)
			}
		})
	}
}

// variant is a way of signing that must be accepted.
type variant struct {
	name  string
	build func(t *testing.T, e *env, op secOp, body []byte) http.Header
}

// handSigned signs without impl/signature, from the documented recipe, as
// a partner following the docs would: Request-Time ISO 8601 with a +08:00
// offset, the value base64 then URL-escaped, pairs separated by ", ".
func handSigned(t *testing.T, e *env, path string, body []byte) http.Header {
	t.Helper()
	ts := time.Now().In(time.FixedZone("UTC+8", 8*3600)).Format("2006-01-02T15:04:05-07:00")
	sum := sha256.Sum256([]byte("POST " + path + "\n" + e.clientID + "." + ts + "." + string(body)))
	sig, err := rsa.SignPKCS1v15(rand.Reader, e.keys.client, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Client-Id", e.clientID)
	h.Set("Request-Time", ts)
	h.Set("Signature", "algorithm=RSA256, keyVersion=1, signature="+url.QueryEscape(base64.StdEncoding.EncodeToString(sig)))
	return h
}

func variants() []variant {
	return []variant{
		{
			// Ant's Go SDK: epoch milliseconds, no spaces in Signature, a
			// Key-Version header, an empty agent-token, Content-Type twice.
			name: "Go SDK style",
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				h := e.signedHeaders(e.signerWith(func(s *signature.Signer) { s.EpochMillis = true }), op.path, body)
				if _, err := strconv.ParseInt(h.Get("Request-Time"), 10, 64); err != nil {
					t.Fatalf("test bug: Request-Time %q is not epoch milliseconds", h.Get("Request-Time"))
				}
				h.Set("Signature", strings.ReplaceAll(h.Get("Signature"), ", ", ","))
				if !regexp.MustCompile(`^algorithm=RSA256,keyVersion=1,signature=[^ ,]+$`).MatchString(h.Get("Signature")) {
					t.Fatalf("test bug: Signature %q", h.Get("Signature"))
				}
				h.Set("Key-Version", "1")
				h["Agent-Token"] = []string{""}
				h["Content-Type"] = []string{"application/json; charset=UTF-8", "application/json; charset=UTF-8"}
				return h
			},
		},
		{
			name: "docs style, hand-signed, +08:00 offset",
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				return handSigned(t, e, op.path, body)
			},
		},
		{
			name: "pairs in another order",
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				h := e.signedHeaders(e.signer, op.path, body)
				p := strings.Split(h.Get("Signature"), ", ")
				if len(p) != 3 {
					t.Fatalf("test bug: Signature %q", h.Get("Signature"))
				}
				h.Set("Signature", p[2]+", "+p[0]+", "+p[1])
				return h
			},
		},
		{
			// A raw base64 value with '+' (one WorldFirst sample): '+' must
			// not become a space.
			name: "raw unescaped base64 containing '+'",
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				start := time.Now()
				for i := range 120 {
					at := start.Add(-time.Duration(i) * time.Second) // another Request-Time, another signature
					h := e.signedHeaders(e.signerWith(func(s *signature.Signer) { s.Now = func() time.Time { return at } }), op.path, body)
					raw, err := url.QueryUnescape(signatureValue(h.Get("Signature")))
					if err != nil {
						t.Fatal(err)
					}
					if strings.Contains(raw, "+") {
						h.Set("Signature", "algorithm=RSA256, keyVersion=1, signature="+raw)
						return h
					}
				}
				t.Fatal("test bug: no signature with a '+' in 120 tries")
				return nil
			},
		},
		{
			name: "no keyVersion (the latest key)",
			build: func(t *testing.T, e *env, op secOp, body []byte) http.Header {
				h := e.signedHeaders(e.signerWith(func(s *signature.Signer) { s.KeyVersion = 0 }), op.path, body)
				if strings.Contains(h.Get("Signature"), "keyVersion") {
					t.Fatalf("test bug: Signature %q", h.Get("Signature"))
				}
				return h
			},
		},
		{
			name: "Request-Time 4 minutes ago",
			build: withSigner(func(_ *env, _ secOp, s *signature.Signer) {
				s.Now = func() time.Time { return time.Now().Add(-4 * time.Minute) }
			}),
		},
		{
			name: "Request-Time 4 minutes ahead",
			build: withSigner(func(_ *env, _ secOp, s *signature.Signer) {
				s.Now = func() time.Time { return time.Now().Add(4 * time.Minute) }
			}),
		},
		{
			name:  "a client allowed only some operations, this one among them",
			build: withSigner(func(e *env, op secOp, s *signature.Signer) { s.ClientID = e.clientID + op.allowedOnly }),
		},
	}
}

func TestAcceptedSignatures(t *testing.T) {
	shared := newEnv(t, withRegistry(securityRegistry))
	for _, op := range secOps() {
		for _, v := range variants() {
			t.Run(op.id+"/"+v.name, func(t *testing.T) {
				e := shared.sub(t)
				body, effect := op.prepare(t, e)
				h := v.build(t, e, op, body)
				r := e.post(op.path, body, h)
				r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				if op.writes && !effect() {
					t.Errorf("accepted but took no effect")
				}
				if got := r.header.Get("Client-Id"); got != h.Get("Client-Id") {
					t.Errorf("response Client-Id %q, want %q", got, h.Get("Client-Id"))
				}
			})
		}
	}
}

// TestKeyRotation registers version 2 next to version 1 in a clients file,
// then retires version 1 by rewriting the file and reloading it.
func TestKeyRotation(t *testing.T) {
	registry := func(v1Retired bool) registryFunc {
		return func(t testing.TB, id string, k testKeys, ops []string) []clients.Entry {
			v1 := keyEntry(t, 1, k.client)
			v1.Retired = v1Retired
			return []clients.Entry{{ClientID: id, Operations: ops, Keys: []clients.KeyEntry{v1, keyEntry(t, 2, k.alt)}}}
		}
	}
	e := newEnv(t, withClientsFile(), withRegistry(registry(false)))
	op := secOps()[0]
	v1 := e.signer
	v2 := e.signerWith(func(s *signature.Signer) { s.KeyVersion, s.Key = 2, e.keys.alt })
	latest := e.signerWith(func(s *signature.Signer) { s.KeyVersion, s.Key = 0, e.keys.alt })
	v1AsLatest := e.signerWith(func(s *signature.Signer) { s.KeyVersion = 0 })

	accepted := func(t *testing.T, e *env, s *signature.Signer) {
		t.Helper()
		body, effect := op.prepare(t, e)
		e.post(op.path, body, e.signedHeaders(s, op.path, body)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		if !effect() {
			t.Error("accepted but took no effect")
		}
	}
	refused := func(t *testing.T, e *env, s *signature.Signer) {
		t.Helper()
		body, effect := op.prepare(t, e)
		wantRefusedWithoutEffect(t, e, op, body, effect, e.signedHeaders(s, op.path, body), codeInvalidSignature)
	}

	t.Run("both versions active", func(t *testing.T) {
		e := e.sub(t)
		t.Run("version 1", func(t *testing.T) { accepted(t, e.sub(t), v1) })
		t.Run("version 2", func(t *testing.T) { accepted(t, e.sub(t), v2) })
		t.Run("no keyVersion, signed with version 2", func(t *testing.T) { accepted(t, e.sub(t), latest) })
		// Without keyVersion the latest key verifies, and only it.
		t.Run("no keyVersion, signed with version 1", func(t *testing.T) {
			e := e.sub(t)
			body, effect := op.prepare(t, e)
			before := e.effects()
			h := e.signedHeaders(v1AsLatest, op.path, body)
			e.post(op.path, body, h).wantResult(t, http.StatusOK, models.ResultStatusFailure, codeInvalidSignature, secrets(t, e, op.path, h, body)...)
			if effect() || e.effects() != before {
				t.Error("a refused request took effect")
			}
		})
	})

	e.writeClients(registry(true)(t, e.clientID, e.keys, testkit.PartnerOperations(t)))

	t.Run("version 1 retired", func(t *testing.T) {
		e := e.sub(t)
		// The control inside refused signs with e.signer: version 1, now
		// retired. Use a sub-env whose signer is version 2.
		e2 := *e
		e2.signer = v2
		t.Run("version 1", func(t *testing.T) { refused(t, e2.sub(t), v1) })
		t.Run("no keyVersion, signed with version 1", func(t *testing.T) { refused(t, e2.sub(t), v1AsLatest) })
		t.Run("version 2", func(t *testing.T) { accepted(t, e.sub(t), v2) })
		t.Run("no keyVersion, signed with version 2", func(t *testing.T) { accepted(t, e.sub(t), latest) })
	})

	t.Run("a broken file keeps the registry in force", func(t *testing.T) {
		e := e.sub(t)
		if err := os.WriteFile(e.clientsFile, []byte("clients: [\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.clients.Reload(); err == nil {
			t.Fatal("Reload accepted a broken file")
		}
		accepted(t, e, v2)
		body, effect := op.prepare(t, e)
		before := e.effects()
		h := e.signedHeaders(v1, op.path, body)
		e.post(op.path, body, h).wantResult(t, http.StatusOK, models.ResultStatusFailure, codeInvalidSignature)
		if effect() || e.effects() != before {
			t.Error("a refused request took effect")
		}
	})
}

func TestTimeWindowIsConfigurable(t *testing.T) {
	e0 := newEnv(t, withTimeWindow(time.Minute))
	op := secOps()[0]
	for _, tc := range []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"now - 2 min", -2 * time.Minute, false},
		{"now + 2 min", 2 * time.Minute, false},
		{"now - 30 s", -30 * time.Second, true},
		{"now + 30 s", 30 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e0.sub(t)
			body, effect := op.prepare(t, e)
			s := e.signerWith(func(s *signature.Signer) { s.Now = func() time.Time { return time.Now().Add(tc.offset) } })
			h := e.signedHeaders(s, op.path, body)
			if !tc.ok {
				wantRefusedWithoutEffect(t, e, op, body, effect, h, codeInvalidSignature)
				return
			}
			e.post(op.path, body, h).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
			if !effect() {
				t.Error("accepted but took no effect")
			}
		})
	}
}

// responseSignature checks, with impl/signature's VerifyResponse as a
// partner SDK would and with the conformance check, that r (the answer to
// method path) is signed by orderhub's key version keyVersion, the header's
// pairs exactly algorithm, keyVersion, signature in this order.
func responseSignature(t *testing.T, e *env, method, path string, sentClientID string, r reply, keyVersion int) {
	t.Helper()
	req := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}}
	if sentClientID != "" {
		req.Header.Set("Client-Id", sentClientID)
	}
	if err := signature.VerifyResponse(&http.Response{Header: r.header, Request: req}, r.body, e.pub); err != nil {
		t.Errorf("response does not verify with orderhub's public key: %v (%v)", err, r)
	}
	if err := conformance.CheckSignature(e.pub, req, r.header, r.body); err != nil {
		t.Errorf("response signature: %v", err)
	}
	sig := r.header.Get("Signature")
	items := strings.Split(sig, ",")
	var names []string
	for _, it := range items {
		name, _, _ := strings.Cut(strings.TrimSpace(it), "=")
		names = append(names, name)
	}
	if diff := cmp.Diff([]string{"algorithm", "keyVersion", "signature"}, names); diff != "" {
		t.Errorf("Signature %q pairs (-want +got):\n%s", sig, diff)
	}
	if want := fmt.Sprintf("algorithm=RSA256, keyVersion=%d, signature=", keyVersion); !strings.HasPrefix(sig, want) {
		t.Errorf("Signature %q, want it to start %q", sig, want)
	}
	// What the Java SDK does: the third comma-separated item, its value
	// URL-decoded, is the base64 signature.
	if len(items) == 3 {
		v, ok := strings.CutPrefix(strings.TrimSpace(items[2]), "signature=")
		dec, err := url.QueryUnescape(v)
		if !ok || err != nil {
			t.Errorf("third item %q is not signature=<escaped>", items[2])
		} else if b, err := base64.StdEncoding.DecodeString(dec); err != nil || len(b) != 256 {
			t.Errorf("third item %q: not a 2048-bit signature in base64 (%d bytes, %v)", items[2], len(b), err)
		}
	}
	if sentClientID != "" && r.header.Get("Client-Id") != sentClientID {
		t.Errorf("Client-Id %q, want %q echoed", r.header.Get("Client-Id"), sentClientID)
	}
}

func TestResponsesAreSigned(t *testing.T) {
	e0 := newEnv(t)
	t.Run("S", func(t *testing.T) {
		e := e0.sub(t)
		r := e.call(opCompletion, completion(uid("req"), e.newOrder(models.OrderStatusReady)))
		r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		responseSignature(t, e, http.MethodPost, pathCompletion, e.clientID, r, 1)
	})
	t.Run("S inquire", func(t *testing.T) {
		e := e0.sub(t)
		r := e.call(opInquire, inquiry(e.newOrder(models.OrderStatusReady)))
		r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		responseSignature(t, e, http.MethodPost, pathInquire, e.clientID, r, 1)
	})
	t.Run("F ORDER_NOT_EXIST", func(t *testing.T) {
		e := e0.sub(t)
		r := e.call(opInquire, inquiry("n0-such-0rder-"+uid("order")))
		r.wantResult(t, http.StatusOK, models.ResultStatusFailure, "ORDER_NOT_EXIST")
		responseSignature(t, e, http.MethodPost, pathInquire, e.clientID, r, 1)
	})
	t.Run("F PARAM_ILLEGAL", func(t *testing.T) {
		e := e0.sub(t)
		r := e.call(opAudit, rawBody{"application/json", `{}`})
		r.wantResult(t, http.StatusOK, models.ResultStatusFailure, "PARAM_ILLEGAL")
		responseSignature(t, e, http.MethodPost, pathAudit, e.clientID, r, 1)
	})
	t.Run("F INVALID_SIGNATURE", func(t *testing.T) {
		e := e0.sub(t)
		r := e.call(opCompletion, completion(uid("req"), uid("order")), func(_ context.Context, req *http.Request) error {
			req.Header.Set("Signature", "garbage")
			return nil
		})
		r.wantResult(t, http.StatusOK, models.ResultStatusFailure, codeInvalidSignature)
		responseSignature(t, e, http.MethodPost, pathCompletion, e.clientID, r, 1)
	})
	// A caller that is no registered, enabled client is refused unsigned,
	// and its Client-Id is not echoed: signing for strangers would hand
	// them orderhub's CPU.
	for name, edit := range map[string]func(context.Context, *http.Request) error{
		"without Client-Id": withoutHeader("Client-Id"),
		"from an unknown Client-Id": func(_ context.Context, req *http.Request) error {
			req.Header.Set("Client-Id", "no-such-"+uid("client"))
			return nil
		},
	} {
		t.Run("F ACCESS_DENIED unsigned, "+name, func(t *testing.T) {
			e := e0.sub(t)
			r := e.call(opCompletion, completion(uid("req"), uid("order")), edit)
			r.wantResult(t, http.StatusOK, models.ResultStatusFailure, codeAccessDenied)
			if got := r.header.Values("Client-Id"); len(got) != 0 {
				t.Errorf("Client-Id %q echoed to a stranger", got)
			}
			if got := r.header.Values("Signature"); len(got) != 0 {
				t.Errorf("Signature %q on a refusal to a stranger", got)
			}
		})
	}
	t.Run("F INVALID_API", func(t *testing.T) {
		e := e0.sub(t)
		r := e.raw(http.MethodPost, "/v2/pos/nope", "application/json", []byte(`{}`))
		r.wantResult(t, http.StatusOK, models.ResultStatusFailure, "INVALID_API")
		responseSignature(t, e, http.MethodPost, "/v2/pos/nope", e.clientID, r, 1)
	})
	t.Run("405", func(t *testing.T) {
		e := e0.sub(t)
		r := e.raw(http.MethodGet, pathInquire, "", nil)
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("HTTP %d, want 405", r.status)
		}
		responseSignature(t, e, http.MethodGet, pathInquire, e.clientID, r, 1)
	})
	t.Run("413", func(t *testing.T) {
		e := e0.sub(t)
		r := e.raw(http.MethodPost, pathAudit, "application/json", oversized())
		r.wantResult(t, http.StatusRequestEntityTooLarge, models.ResultStatusFailure, "PARAM_ILLEGAL")
		responseSignature(t, e, http.MethodPost, pathAudit, e.clientID, r, 1)
	})
	t.Run("U Redis stopped", func(t *testing.T) {
		e := e0.sub(t)
		id := e.newOrder(models.OrderStatusPreparing)
		e.redis.Stop()
		defer e.redis.Restart()
		for _, tc := range []struct {
			path string
			send func() reply
		}{
			{pathCompletion, func() reply { return e.call(opCompletion, completion(uid("req"), id)) }},
			{pathInquire, func() reply { return e.call(opInquire, inquiry(id)) }},
			{pathAudit, func() reply {
				return e.call(opAudit, models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: uid("trade"), DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept})
			}},
		} {
			r := tc.send()
			r.wantResult(t, http.StatusOK, models.ResultStatusUnknown, "UNKNOWN_EXCEPTION")
			responseSignature(t, e, http.MethodPost, tc.path, e.clientID, r, 1)
		}
	})
}

func TestResponseKeyVersionIsConfigurable(t *testing.T) {
	e := newEnv(t, withSigningKeyVersion(3))
	r := e.call(opCompletion, completion(uid("req"), e.newOrder(models.OrderStatusReady)))
	r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	responseSignature(t, e, http.MethodPost, pathCompletion, e.clientID, r, 3)
	r = e.raw(http.MethodPost, "/v2/pos/nope", "application/json", []byte(`{}`))
	responseSignature(t, e, http.MethodPost, "/v2/pos/nope", e.clientID, r, 3)
}

// captureRequest records the headers of the request as sent (it runs after
// the signer).
func captureRequest(into *http.Header) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		*into = req.Header.Clone()
		return nil
	}
}

// TestReplayCarriesTheFirstSignature: under a clock that moves one second
// per reading, the repeat of a notification is signed afresh by the caller
// yet answered with the first answer's Response-Time and Signature, byte for
// byte; and a repeat that is not properly signed gets no replay at all.
func TestReplayCarriesTheFirstSignature(t *testing.T) {
	e0 := newEnv(t, withStepClock(newStepClock()))
	check := func(t *testing.T, e *env, path string, send func(editors ...client.RequestEditorFn) reply, status models.ResultStatus, code string) {
		t.Helper()
		var sent1, sent2 http.Header
		first := send(captureRequest(&sent1))
		first.wantResult(t, http.StatusOK, status, code)
		again := send(captureRequest(&sent2))
		if sent1.Get("Request-Time") == sent2.Get("Request-Time") || sent1.Get("Signature") == sent2.Get("Signature") {
			t.Fatalf("test bug: the two requests were signed alike (%q, %q)", sent1.Get("Request-Time"), sent2.Get("Request-Time"))
		}
		for _, h := range []string{"Signature", "Response-Time"} {
			if got, want := again.header.Values(h), first.header.Values(h); !cmp.Equal(got, want) || len(want) != 1 {
				t.Errorf("replayed %s %q, first %q", h, got, want)
			}
		}
		if string(again.body) != string(first.body) {
			t.Errorf("replayed body %s, first %s", again.body, first.body)
		}
		responseSignature(t, e, http.MethodPost, path, e.clientID, first, 1)
		responseSignature(t, e, http.MethodPost, path, e.clientID, again, 1)

		// The same request with a bad signature is refused, not replayed.
		bad := send(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Signature", "algorithm=RSA256, keyVersion=1, signature="+signatureValue(sent1.Get("Signature")))
			return nil
		})
		bad.wantResult(t, http.StatusOK, models.ResultStatusFailure, codeInvalidSignature)
		if bad.header.Get("Signature") == first.header.Get("Signature") {
			t.Error("the refusal carries the stored answer's signature")
		}
	}
	t.Run("notifyOrderCompletion S", func(t *testing.T) {
		e := e0.sub(t)
		id, rid := e.newOrder(models.OrderStatusPreparing), uid("req")
		check(t, e, pathCompletion, func(ed ...client.RequestEditorFn) reply { return e.call(opCompletion, completion(rid, id), ed...) }, models.ResultStatusSuccess, "SUCCESS")
	})
	t.Run("notifyOrderCompletion F", func(t *testing.T) {
		e := e0.sub(t)
		id, rid := uid("order"), uid("req")
		check(t, e, pathCompletion, func(ed ...client.RequestEditorFn) reply { return e.call(opCompletion, completion(rid, id), ed...) }, models.ResultStatusFailure, "ORDER_NOT_EXIST")
	})
	t.Run("notifyDeliveryAuditResult S", func(t *testing.T) {
		e := e0.sub(t)
		b := models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: uid("trade"), DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusReject}
		check(t, e, pathAudit, func(ed ...client.RequestEditorFn) reply { return e.call(opAudit, b, ed...) }, models.ResultStatusSuccess, "SUCCESS")
	})
}
