package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/conformance"
	"github.com/orderhub/orderhub/tests/testkit"
)

// The partner paths FuzzRequest aims at, by its pathSel argument.
var fuzzPaths = []string{
	"/v2/pds/order/notifyOrderCompletion",
	"/v2/pos/inquireOrderDetail",
	"/v1/delivery/notifyDeliveryAuditResult",
	"/v2/pos/notifyOrderChange",
}

// fuzzBodyLimit is small, so that the fuzzer reaches the 413 answer.
const fuzzBodyLimit = 4 << 10

var fuzzNow = time.Date(2024, 6, 1, 8, 15, 0, 0, time.UTC)

// Request modes, the bits of FuzzRequest's mode argument.
const (
	modeSign       = 1 << iota // sign as client "c" over the request as sent
	modeAdminToken             // send the operator token
	modeTwoCT                  // send Content-Type twice, as Ant's Go SDK may
)

// The result codes orderhub may answer with (DOMAIN's table).
var knownCodes = map[string]bool{
	"SUCCESS": true, "PROCESS_FAIL": true, "PARAM_ILLEGAL": true, "INVALID_API": true,
	"INVALID_SIGNATURE": true, "ACCESS_DENIED": true, "REQUEST_TRAFFIC_EXCEED_LIMIT": true,
	"REPEAT_REQ_INCONSISTENT": true, "ORDER_NOT_EXIST": true, "ORDER_STATUS_INVALID": true,
	"UNKNOWN_EXCEPTION": true,
}

// fuzzService is orderhub over a memory store that is replaced before every
// input, so that each input meets the same state.
type fuzzService struct {
	h      http.Handler
	st     *swappableStore
	errs   *errorCounter
	conf   *conformance.Transport
	pub    *rsa.PublicKey  // orderhub's
	caller *rsa.PrivateKey // client "c", key version 1
	// sigs remembers the signatures made, by content: many mutations
	// change only what signing overwrites, and RSA signing dominates the
	// cost of an input. Inputs run one at a time in a process.
	sigs map[[sha256.Size]byte][]byte
}

// swappableStore is a Store whose implementation can be replaced between
// requests (never during one).
type swappableStore struct{ store.Store }

// errorCounter is a slog handler counting records at Error level: with a
// memory store, orderhub logs an error only for a panic or an error its
// table does not know.
type errorCounter struct {
	n    atomic.Int64
	last atomic.Value // string
}

func (e *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (e *errorCounter) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	e.n.Add(1)
	e.last.Store(b.String())
	return nil
}
func (e *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return e }
func (e *errorCounter) WithGroup(string) slog.Handler      { return e }

func newFuzzService(tb testing.TB) *fuzzService {
	tb.Helper()
	// orderhub signs every answer to "c": with a 1024-bit key it signs
	// several times faster, and the fuzzer gets through that many more.
	own, caller := testkit.SmallKey(tb), testkit.Key(tb, 1)
	fs := &fuzzService{st: &swappableStore{}, errs: &errorCounter{}, pub: &own.PublicKey, caller: caller, sigs: map[[sha256.Size]byte][]byte{}}
	h, err := New(fs.st, Config{
		Clients:    testkit.Clients(tb, testkit.Entry(tb, "c", &caller.PublicKey)),
		SigningKey: own,
		AdminToken: "tok",
		BodyLimit:  fuzzBodyLimit,
		Now:        func() time.Time { return fuzzNow },
		Logger:     slog.New(fs.errs),
		// The clock stands still, so the budget of signed refusals never
		// refills: make it larger than any run, and every answer to "c"
		// is signed.
		SignedRefusals: 1 << 28,
	})
	if err != nil {
		tb.Fatal(err)
	}
	fs.h = h
	fs.conf = conformance.New(tb, nil)
	return fs
}

// reset gives the service a fresh store holding one open and one final order.
func (fs *fuzzService) reset(t *testing.T) {
	m := store.NewMemory(func() time.Time { return fuzzNow })
	for id, st := range map[string]domain.OrderStatus{"o-open": domain.Preparing, "o-cancelled": domain.Cancelled} {
		if _, err := m.PutOrder(t.Context(), domain.Order{RequestOrderID: id, PosOrderID: "p-" + id, Status: st, CreatedAt: fuzzNow, UpdatedAt: fuzzNow}); err != nil {
			t.Fatal(err)
		}
	}
	fs.st.Store = m
	fs.errs.n.Store(0)
}

// FuzzRequest sends orderhub arbitrary requests to its partner paths (and
// the operator API) through the whole handler: method, path suffix,
// Client-Id, Request-Time, Signature, Content-Type and body all come from
// the fuzzer, and modeSign signs the request validly so that validation and
// the handlers are reached. Whatever comes in, orderhub must answer a
// documented status (never 5xx) with the result envelope carrying S, F or U
// and a known code, never U (the memory store cannot fail: U would be a
// panic or an unmapped error), never log an error, conform to the
// contract, and sign every partner answer verifiably.
func FuzzRequest(f *testing.F) {
	fs := newFuzzService(f)
	iso := fuzzNow.Format(time.RFC3339)
	for _, s := range []struct {
		mode, pathSel                     uint8
		method, suffix, clientID, rt, sig string
		contentType, body                 string
	}{
		{modeSign, 0, "POST", "", "", "", "", "application/json", `{"requestId":"r1","requestOrderId":"o-open"}`},
		{modeSign, 0, "POST", "", "", "", "", "application/json", `{"requestId":"r2","requestOrderId":"o-cancelled"}`},
		{modeSign, 0, "POST", "", "", "", "", "application/json; charset=UTF-8", `{"requestId":"r3","requestOrderId":"nope","x":1}`},
		{modeSign, 1, "POST", "", "", "", "", "application/json", `{"requestOrderId":"o-open","extra":{"a":[1,2.5e3,null,true]}}`},
		{modeSign, 1, "POST", "", "", "", "", "application/json", `{"requestOrderId":"o-open","requestOrderId":"nope"}`},
		{modeSign, 1, "POST", "", "", "1717229700000", "", "application/json", `{"requestOrderId":"o-open"}`},
		{modeSign, 2, "POST", "", "", "", "", "application/json", `{"requestId":"r4","tradeId":"t","deliveryBatchId":"b","deliveryAuditStatus":"ACCEPT"}`},
		{modeSign, 2, "POST", "", "", "", "", "application/json", `{"requestId":"r5","tradeId":"t","deliveryBatchId":"b","deliveryAuditStatus":"REJECT","n":1e400}`},
		{modeSign | modeTwoCT, 2, "POST", "", "", "", "", "application/json", `{"requestId":"r6\ud800","tradeId":"t","deliveryBatchId":"b","deliveryAuditStatus":"ACCEPT"}`},
		{modeSign, 0, "POST", "", "", "", "", "text/plain", `{"requestId":"r7","requestOrderId":"o-open"}`},
		{modeSign, 6, "POST", "", "", "", "", "application/json", `{"requestId":"r9","requestOrderId":"o-open","orderStatus":"READY","refundAmount":{"currency":"SGD","value":"100"}}`},
		{modeSign, 6, "POST", "", "", "", "", "application/json", `{"requestId":"r10","requestOrderId":"o-cancelled","deliveryStatus":"X","orderReadyTime":"2024-06-01T08:35:00+08:00"}`},
		{modeSign, 6, "POST", "", "", "", "", "application/json", `{"requestId":"r11","requestOrderId":"o-open","refundAmount":{"currency":"sgd","value":"-1"}}`},
		{modeSign, 6, "POST", "", "", "", "", "application/json", `{"requestId":"r12","requestOrderId":"o-open"}`},
		{modeSign, 1, "POST", "", "", "", "", "application/json", "{\"requestOrderId\":\"o\xff\"}"},
		{modeSign, 1, "POST", "", "", "", "", "application/json", `{"requestOrderId":`},
		{modeSign, 1, "POST", "", "", "", "", "application/json", strings.Repeat(" ", fuzzBodyLimit+1)},
		{modeSign, 5, "POST", "?a=1", "", "", "", "application/json", `{"requestOrderId":"o-open"}`},
		{modeSign, 5, "POST", "X", "", "", "", "application/json", `{}`},
		{modeSign, 0, "GET", "", "", "", "", "", ""},
		{0, 0, "POST", "", "c", iso, "algorithm=RSA256, keyVersion=1, signature=YWJj", "application/json", `{"requestId":"r8","requestOrderId":"o-open"}`},
		{0, 1, "POST", "", "c", "yesterday", "algorithm=RSA256,signature=YWJj", "application/json", `{"requestOrderId":"o-open"}`},
		{0, 2, "POST", "", "", "", "", "", ""},
		{0, 1, "PATCH", "", "stranger", iso, "x", "application/json", `{}`},
		{modeAdminToken, 3, "PUT", "o-new", "", "", "", "application/json", `{"posOrderId":"p","orderStatus":"READY","extendInfo":{"k":"v"}}`},
		{modeAdminToken, 3, "PUT", "o-open", "", "", "", "application/json", `{"posOrderId":"p","orderStatus":"ORDER_SUCCESS"}`},
		{modeAdminToken, 3, "GET", "o-cancelled", "", "", "", "", ""},
		{modeAdminToken, 4, "GET", "t", "", "", "", "", ""},
		{0, 3, "GET", "o-open", "", "", "", "", ""},
	} {
		f.Add(s.mode, s.pathSel, s.method, s.suffix, s.clientID, s.rt, s.sig, s.contentType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, mode, pathSel uint8, method, suffix, clientID, requestTime, sig, contentType string, body []byte) {
		target, ops := fuzzTarget(pathSel, suffix)
		if !token(method) || !visibleASCII(target) {
			return // net/http refuses such a request line before any handler
		}
		// The request as net/http's server reads it off the wire.
		var wire bytes.Buffer
		fmt.Fprintf(&wire, "%s %s HTTP/1.1\r\nHost: orderhub\r\nContent-Length: %d\r\n", method, target, len(body))
		for _, h := range [][2]string{{"Client-Id", clientID}, {"Request-Time", requestTime}, {"Signature", sig}, {"Content-Type", contentType}} {
			if !fieldValue(h[1]) {
				return
			}
			if h[1] != "" {
				fmt.Fprintf(&wire, "%s: %s\r\n", h[0], h[1])
			}
		}
		if mode&modeTwoCT != 0 && contentType != "" {
			fmt.Fprintf(&wire, "Content-Type: %s\r\n", contentType)
		}
		if mode&modeAdminToken != 0 {
			wire.WriteString("Authorization: Bearer tok\r\n")
		}
		wire.WriteString("\r\n")
		wire.Write(body)
		req, err := http.ReadRequest(bufio.NewReader(&wire))
		if err != nil {
			return // refused before any handler
		}
		if mode&modeSign != 0 {
			fs.sign(t, req, body)
		}

		fs.reset(t)
		rec := httptest.NewRecorder()
		fs.h.ServeHTTP(rec, req)
		fs.check(t, req, rec, ops)
	})
}

// fuzzTarget builds the request target: a partner path (0-2, then 6 on
// for the partner operations added later), an operator path with suffix as
// its id (3, 4), or a partner path followed by suffix (5: queries, unknown
// paths). The numbers stay put as operations are added, so the committed
// corpus keeps its meaning.
func fuzzTarget(pathSel uint8, suffix string) (target string, ops bool) {
	span := len(fuzzPaths) + 3
	switch n := int(pathSel) % span; n {
	case 3:
		return "/ops/orders/" + suffix, true
	case 4:
		return "/ops/trades/" + suffix + "/deliveryAudits", true
	case 5:
		return fuzzPaths[int(pathSel)/span%len(fuzzPaths)] + suffix, false
	default:
		if n > 5 {
			n -= 3
		}
		return fuzzPaths[n], false
	}
}

// sign signs req as client "c" over its method, path, Request-Time (the
// fuzzer's, or the service's now) and body.
func (fs *fuzzService) sign(t *testing.T, req *http.Request, body []byte) {
	rt := req.Header.Get("Request-Time")
	if rt == "" {
		rt = fuzzNow.Format(time.RFC3339)
	}
	content := signature.Content(req.Method, req.URL.EscapedPath(), "c", rt, body)
	sum := sha256.Sum256(content)
	s, ok := fs.sigs[sum]
	if !ok {
		var err error
		if s, err = signature.Sign(fs.caller, content); err != nil {
			t.Fatal(err)
		}
		if len(fs.sigs) >= 1<<12 {
			clear(fs.sigs)
		}
		fs.sigs[sum] = s
	}
	req.Header.Set("Client-Id", "c")
	req.Header.Set("Request-Time", rt)
	req.Header.Set("Signature", signature.Header{Algorithm: signature.Algorithm, KeyVersion: 1, Signature: s}.String())
}

func (fs *fuzzService) check(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder, ops bool) {
	t.Helper()
	status, body := rec.Code, rec.Body.Bytes()
	if n := fs.errs.n.Load(); n > 0 {
		t.Errorf("orderhub logged %d error(s), last: %v", n, fs.errs.last.Load())
	}
	documented := map[int]bool{http.StatusOK: true, http.StatusMethodNotAllowed: true, http.StatusRequestEntityTooLarge: true}
	if ops {
		documented = map[int]bool{http.StatusOK: true, http.StatusBadRequest: true, http.StatusUnauthorized: true,
			http.StatusNotFound: true, http.StatusMethodNotAllowed: true, http.StatusConflict: true, http.StatusRequestEntityTooLarge: true}
	}
	if !documented[status] {
		t.Fatalf("%s %s: HTTP %d: %s", req.Method, req.URL, status, body)
	}
	var env struct {
		Result *struct{ ResultStatus, ResultCode, ResultMessage string }
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s %s: HTTP %d, body is not JSON: %q", req.Method, req.URL, status, body)
	}
	switch r := env.Result; {
	case r == nil && ops && status == http.StatusOK:
		// An operator answer: the order or the audits, checked below.
	case r == nil:
		t.Fatalf("%s %s: HTTP %d without a result: %s", req.Method, req.URL, status, body)
	case r.ResultStatus == "U":
		t.Fatalf("%s %s: U/%s: a memory store cannot fail, so a panic or an unmapped error", req.Method, req.URL, r.ResultCode)
	case r.ResultStatus != "S" && r.ResultStatus != "F", !knownCodes[r.ResultCode], r.ResultMessage == "":
		t.Fatalf("%s %s: result %+v", req.Method, req.URL, *r)
	}
	if !strings.Contains(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
	}
	if err := fs.conf.Check(req, status, rec.Header(), body); err != nil {
		t.Errorf("%s %s → %d does not conform: %v\nbody: %s", req.Method, req.URL, status, err, body)
	}
	if !ops {
		check := func() error { return conformance.CheckUnsigned(rec.Header()) } // a stranger
		if req.Header.Get("Client-Id") == "c" {
			check = func() error { return conformance.CheckSignature(fs.pub, req, rec.Header(), body) }
		}
		if err := check(); err != nil {
			t.Errorf("%s %s → %d: response signature: %v", req.Method, req.URL, status, err)
		}
	}
}

// token reports whether s is an HTTP method token (RFC 9110 tchar).
func token(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func visibleASCII(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// fieldValue reports whether v fits on one header line.
func fieldValue(v string) bool {
	return !strings.ContainsAny(v, "\r\n")
}
