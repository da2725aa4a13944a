// Package hostile sends orderhub the requests a hostile or broken partner
// could send: malformed, truncated and ambiguous JSON, wrong types, nulls,
// unknown fields, over-long ids, invalid UTF-8, huge numbers, duplicate
// keys, wrong content types, empty and oversized bodies, other methods,
// missing and bad signatures. The cases live in testdata/*.txtar (format in
// testdata/README.md); each must get its documented status and result
// envelope, conform to the contract, carry orderhub's valid signature on
// partner paths when the registered client sent them (none otherwise), and
// never be a 5xx.
package hostile

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/conformance"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

const (
	adminToken = "hostile-admin-token"
	clientID   = "hostile-client"
)

// The orders and trades the corpus refers to, set up before the cases run.
// Cases that must have no effect aim at the untouched ones, and the test
// checks afterwards that they are as they were.
var setupOrders = map[string]string{
	"hostile-open":      "PREPARING", // must stay PREPARING: no case may complete it
	"hostile-cancelled": "CANCELLED", // completing it is ORDER_STATUS_INVALID
	"hostile-ready":     "READY",     // the successful completions
	"hostile-changing":  "ACCEPTED",  // the successful changes (notifyOrderChange)
}

const untouchedTrade = "hostile-trade-untouched" // no case may record an audit for it

// world is orderhub over a real redis-server, served over HTTP.
type world struct {
	url      string
	http     *http.Client
	conf     *conformance.Transport // its Check and CheckSignature judge every answer
	orderhub *rsa.PublicKey
	client   *rsa.PrivateKey // registered as clientID, version 1
	stranger *rsa.PrivateKey // registered nowhere
}

func newWorld(t *testing.T) *world {
	t.Helper()
	own, cl, stranger := testkit.Key(t, 0), testkit.Key(t, 1), testkit.Key(t, 2)

	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	h, err := httpapi.New(store.NewRedis(rdb), httpapi.Config{
		Clients:    testkit.Clients(t, testkit.Entry(t, clientID, &cl.PublicKey)),
		SigningKey: own,
		AdminToken: adminToken,
		// The corpus sends many refusals as the registered client: every
		// one is checked for its signature, so the budget exceeds them.
		SignedRefusals: 1 << 20,
	})
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &world{
		url: hs.URL, http: &http.Client{Timeout: 30 * time.Second},
		// One transport for the whole corpus: loading the contract costs
		// more than a case. Its checks report to each case's t (see do).
		conf:     conformance.New(t, nil),
		orderhub: &own.PublicKey, client: cl, stranger: stranger,
	}
}

func TestHostileCorpus(t *testing.T) {
	cases, err := loadCorpus("testdata")
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	w := newWorld(t)
	for id, status := range setupOrders {
		w.putOrder(t, id, status)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { w.run(t, c) })
	}

	// What no case may have done, whatever its answer said.
	for id, status := range setupOrders {
		if id == "hostile-ready" || id == "hostile-changing" {
			continue
		}
		body := w.opsGet(t, "/ops/orders/"+id)
		if !strings.Contains(body, fmt.Sprintf(`"orderStatus":%q`, status)) {
			t.Errorf("order %s changed: %s", id, body)
		}
	}
	if body := w.opsGet(t, "/ops/trades/"+untouchedTrade+"/deliveryAudits"); !strings.Contains(body, `"deliveryAudits":[]`) {
		t.Errorf("trade %s got audits: %s", untouchedTrade, body)
	}
}

// TestCorpusCoversTheIssueList keeps the corpus honest: every kind of
// hostile input is there for every partner operation.
func TestCorpusCoversTheIssueList(t *testing.T) {
	cases, err := loadCorpus("testdata")
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	kinds := []string{"malformed", "truncated", "wrong type", "null", "unknown field", "256", "invalid UTF-8",
		"huge number", "duplicate key", "content type", "empty body", "10 MB", "method", "unsigned", "garbage signature"}
	for _, family := range []string{"notifyOrderCompletion", "notifyOrderChange", "inquireOrderDetail", "notifyDeliveryAuditResult"} {
		for _, kind := range kinds {
			found := false
			for _, c := range cases {
				if strings.HasPrefix(c.name, family+"/") && strings.Contains(c.name, kind) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: no case named with %q", family, kind)
			}
		}
	}
}

// run sends c and checks the answer.
func (w *world) run(t *testing.T, c hostileCase) {
	req := w.request(t, c)
	res, body := w.do(t, req)
	if res.StatusCode >= 500 {
		t.Errorf("HTTP %d: orderhub must never answer 5xx to a request (%s)", res.StatusCode, body)
	}
	if res.StatusCode != c.wantHTTP {
		t.Errorf("HTTP %d, want %d; body %s", res.StatusCode, c.wantHTTP, body)
	}
	if c.wantAllow != "" && res.Header.Get("Allow") != c.wantAllow {
		t.Errorf("Allow %q, want %q", res.Header.Get("Allow"), c.wantAllow)
	}
	if c.wantRequestIDNew && res.Header.Get("X-Request-Id") == req.Header.Get("X-Request-Id") {
		t.Errorf("X-Request-Id %q echoed, want a new one", res.Header.Get("X-Request-Id"))
	}
	if c.method == http.MethodHead {
		if len(body) != 0 {
			t.Errorf("HEAD answered with a body: %q", body)
		}
	} else {
		checkEnvelope(t, c, body)
	}
	if c.thenGet != "" {
		got := w.opsGet(t, c.thenGet)
		for _, s := range c.thenContains {
			if !strings.Contains(got, s) {
				t.Errorf("afterwards %s: %s lacks %s", c.thenGet, got, s)
			}
		}
		for _, s := range c.thenLacks {
			if strings.Contains(got, s) {
				t.Errorf("afterwards %s: %s has %s", c.thenGet, got, s)
			}
		}
	}
}

// checkEnvelope checks the result object against the case. Every answer
// but an operator success is the envelope.
func checkEnvelope(t *testing.T, c hostileCase, body []byte) {
	t.Helper()
	var env struct {
		Result *struct{ ResultStatus, ResultCode, ResultMessage string }
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, body)
	}
	if c.wantStatus == "" {
		return
	}
	r := env.Result
	if r == nil {
		t.Fatalf("no result in %s", body)
	}
	if r.ResultStatus != c.wantStatus || r.ResultCode != c.wantCode {
		t.Errorf("result %s/%s %q, want %s/%s", r.ResultStatus, r.ResultCode, r.ResultMessage, c.wantStatus, c.wantCode)
	}
	for _, m := range c.wantMessage {
		if !strings.Contains(r.ResultMessage, m) {
			t.Errorf("resultMessage %q lacks %q", r.ResultMessage, m)
		}
	}
	for _, m := range c.notInMessage {
		if strings.Contains(r.ResultMessage, m) {
			t.Errorf("resultMessage %q echoes %q", r.ResultMessage, m)
		}
	}
}

// request builds c's request, signed or authorised as c says.
func (w *world) request(t *testing.T, c hostileCase) *http.Request {
	t.Helper()
	var body io.Reader = bytes.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(bytes.NewReader(c.body)) // length unknown: chunked
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, w.url+c.path, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if !c.noCT {
		req.Header.Set("Content-Type", c.contentType)
	}
	if isOps(c.path) {
		switch c.auth {
		case "valid":
			req.Header.Set("Authorization", "Bearer "+adminToken)
		case "wrong":
			req.Header.Set("Authorization", "Bearer "+adminToken+"x")
		}
	} else {
		w.sign(t, c, req)
	}
	for _, h := range c.setHeaders {
		req.Header.Set(h[0], h[1])
	}
	for _, h := range c.addHeaders {
		req.Header.Add(h[0], h[1])
	}
	return req
}

func (w *world) sign(t *testing.T, c hostileCase, req *http.Request) {
	t.Helper()
	s := signature.Signer{ClientID: clientID, KeyVersion: 1, Key: w.client}
	switch c.sign {
	case "none":
		return
	case "epoch-millis":
		s.EpochMillis = true
	case "stale":
		s.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
	case "future":
		s.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	case "wrong-key":
		s.Key = w.stranger
	case "unknown-client":
		s.ClientID, s.Key = "hostile-stranger", w.stranger
	case "tampered":
		// A valid signature, of the body with one more byte.
		other, err := http.NewRequest(c.method, req.URL.String(), bytes.NewReader(append(bytes.Clone(c.body), ' ')))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Edit(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"Client-Id", "Request-Time", "Signature"} {
			req.Header.Set(h, other.Header.Get(h))
		}
		return
	}
	// Edit reads the body and puts back a reader; a chunked request keeps
	// its zero ContentLength and so stays chunked.
	if err := s.Edit(t.Context(), req); err != nil {
		t.Fatalf("signing: %v", err)
	}
	if c.sign == "garbage" {
		req.Header.Set("Signature", "algorithm=RSA256, keyVersion=1, signature=Z2FyYmFnZQ%3D%3D")
	}
}

// putOrder creates an order through the operator API.
func (w *world) putOrder(t *testing.T, id, status string) {
	t.Helper()
	body := fmt.Sprintf(`{"posOrderId":"pos-%s","orderStatus":%q}`, id, status)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, w.url+"/ops/orders/"+id, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if res, b := w.do(t, req); res.StatusCode != http.StatusOK {
		t.Fatalf("setting up order %s: HTTP %d %s", id, res.StatusCode, b)
	}
}

// opsGet reads an operator path and returns the body.
func (w *world) opsGet(t *testing.T, path string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, w.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, b := w.do(t, req)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", path, res.StatusCode, b)
	}
	return string(b)
}

// do sends req and checks the answer with tests/conformance: it conforms
// to the contract and, on a partner path, carries orderhub's valid
// signature when the registered client sent it, and none when anyone else
// did. An answer to HEAD has no body to check either in.
func (w *world) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := w.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if req.Method == http.MethodHead {
		return res, body
	}
	if err := w.conf.Check(req, res.StatusCode, res.Header, body); err != nil {
		t.Errorf("conformance: %s %s → %d: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
	if !isOps(req.URL.Path) {
		check := func() error { return conformance.CheckUnsigned(res.Header) } // a stranger
		if req.Header.Get("Client-Id") == clientID {
			check = func() error { return conformance.CheckSignature(w.orderhub, req, res.Header, body) }
		}
		if err := check(); err != nil {
			t.Errorf("conformance: %s %s → %d: response signature: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, body)
		}
	}
	return res, body
}
