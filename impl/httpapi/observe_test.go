package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/store"
)

// observed is a test service whose logs are kept.
type observed struct {
	testService
	mu   sync.Mutex
	logs bytes.Buffer
}

func (o *observed) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.logs.Write(p)
}

// requestLines are the "request" log lines written so far, decoded.
func (o *observed) requestLines(t *testing.T) []map[string]any {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(o.logs.Bytes()))
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if l["msg"] == "request" {
			lines = append(lines, l)
		}
	}
	return lines
}

func newObserved(t *testing.T, st store.Store) *observed {
	o := &observed{}
	o.testService = newTestServiceOn(t, st, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(o, nil))
	})
	return o
}

// call sends a request, signed when sign is set, with extra headers.
func (o *observed) call(t *testing.T, method, path, body string, sign bool, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if sign {
		if err := o.signer.Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, req)
	return rec
}

func withOrder(t *testing.T, id string, status domain.OrderStatus) store.Store {
	t.Helper()
	st := store.NewMemory(nil)
	now := time.Now().UTC()
	if _, err := st.PutOrder(t.Context(), domain.Order{RequestOrderID: id, PosOrderID: "p", Status: status, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return st
}

const completion = "/v2/pds/order/notifyOrderCompletion"

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestRequestIDs(t *testing.T) {
	o := newObserved(t, withOrder(t, "o1", domain.Ready))
	body := `{"requestId":"r1","requestOrderId":"o1"}`

	first := o.call(t, http.MethodPost, completion, body, true, "X-Request-Id", "trace-1")
	if got := first.Header().Get("X-Request-Id"); got != "trace-1" {
		t.Errorf("a usable X-Request-Id is echoed: got %q", got)
	}
	// The replay is the first answer byte for byte, but carries its own id.
	again := o.call(t, http.MethodPost, completion, body, true, "X-Request-Id", "trace-2")
	if got := again.Header().Get("X-Request-Id"); got != "trace-2" {
		t.Errorf("a replay carries its own request's id: got %q", got)
	}
	if first.Body.String() != again.Body.String() || first.Header().Get("Signature") != again.Header().Get("Signature") {
		t.Errorf("the replay is not the first answer:\n%s\n%s", first.Body, again.Body)
	}

	for name, sent := range map[string]string{
		"absent":      "",
		"too long":    strings.Repeat("a", 129),
		"with spaces": "a b",
		"log forgery": "x\n{\"msg\":\"request\"}",
		"not ASCII":   "ïd",
	} {
		t.Run(name, func(t *testing.T) {
			rec := o.call(t, http.MethodGet, "/healthz", "", false, "X-Request-Id", sent)
			if got := rec.Header().Get("X-Request-Id"); !uuidRE.MatchString(got) {
				t.Errorf("X-Request-Id %q: want a new UUID, got %q", sent, got)
			}
		})
	}
	rec := o.call(t, http.MethodGet, "/nowhere", "", false)
	if got := rec.Header().Get("X-Request-Id"); !uuidRE.MatchString(got) {
		t.Errorf("an unknown path gets an id too: %q", got)
	}
}

func TestRequestLogLines(t *testing.T) {
	o := newObserved(t, withOrder(t, "order-secret-value", domain.Ready))
	rec := o.call(t, http.MethodPost, completion, `{"requestId":"r-log","requestOrderId":"order-secret-value"}`, true, "X-Request-Id", "trace-log")
	signatureSent := rec.Header().Get("Signature")
	o.call(t, http.MethodPost, completion, `{"requestId":"r-bad","requestOrderId":"x"}`, false, "X-Request-Id", "trace-unsigned", "Client-Id", "c")
	o.call(t, http.MethodGet, "/ops/orders/order-secret-value", "", false, "X-Request-Id", "trace-ops", "Authorization", "Bearer tok")

	lines := o.requestLines(t)
	if len(lines) != 3 {
		t.Fatalf("want one line per request (3), got %d: %v", len(lines), lines)
	}
	pick := func(l map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			if v, ok := l[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	keys := []string{"xRequestId", "operation", "clientId", "requestId", "resultStatus", "resultCode", "status", "method", "path"}
	want := []map[string]any{
		{"xRequestId": "trace-log", "operation": "notifyOrderCompletion", "clientId": "c", "requestId": "r-log",
			"resultStatus": "S", "resultCode": "SUCCESS", "status": 200.0, "method": "POST", "path": completion},
		{"xRequestId": "trace-unsigned", "operation": "notifyOrderCompletion", "clientId": "c",
			"resultStatus": "F", "resultCode": "INVALID_SIGNATURE", "status": 200.0, "method": "POST", "path": completion},
		{"xRequestId": "trace-ops", "operation": "getOrder", "clientId": "",
			"resultStatus": "S", "resultCode": "SUCCESS", "status": 200.0, "method": "GET", "path": "/ops/orders/order-secret-value"},
	}
	for i, l := range lines {
		if diff := cmp.Diff(want[i], pick(l, keys...)); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", i, diff)
		}
		if _, ok := l["latency"]; !ok {
			t.Errorf("line %d has no latency: %v", i, l)
		}
	}
	// Never the body, the signature or the token.
	o.mu.Lock()
	logs := o.logs.String()
	o.mu.Unlock()
	for _, secret := range []string{`"requestOrderId"`, signatureSent, "Bearer tok", "algorithm=RSA256"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain %q:\n%s", secret, logs)
		}
	}
}

// failingBegin is a store whose Begin fails, as Redis does when it is down.
type failingBegin struct{ store.Store }

func (failingBegin) Begin(context.Context, store.Key, string, time.Duration) (store.Begun, error) {
	return store.Begun{}, errors.New("dial tcp: connection refused")
}

// scrape reads /metrics the way Prometheus does.
func scrape(t *testing.T, h http.Handler) map[string][]sample {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Signature") != "" {
		t.Error("/metrics is signed: service endpoints are not partner messages")
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	out := map[string][]sample{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			s := sample{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				s.value = m.Counter.GetValue()
			case m.Histogram != nil:
				s.value = float64(m.Histogram.GetSampleCount())
			}
			out[name] = append(out[name], s)
		}
	}
	return out
}

type sample struct {
	labels map[string]string
	value  float64
}

// value sums the samples of name whose labels include want.
func value(m map[string][]sample, name string, want map[string]string) float64 {
	var sum float64
next:
	for _, s := range m[name] {
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
	}
	return sum
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	o := newObserved(t, withOrder(t, "o1", domain.Ready))
	body := `{"requestId":"r1","requestOrderId":"o1"}`
	o.call(t, http.MethodPost, completion, body, true)                                             // S, new
	o.call(t, http.MethodPost, completion, body, true)                                             // S, replay
	o.call(t, http.MethodPost, completion, `{"requestId":"r1","requestOrderId":"o2"}`, true)       // F, mismatch
	o.call(t, http.MethodPost, completion, body, false, "Client-Id", "c", "Signature", "garbage")  // bad signature
	o.call(t, http.MethodPost, completion, body, false, "Client-Id", "stranger")                   // unknown client
	o.call(t, http.MethodPost, "/v2/pos/inquireOrderDetail", `{"requestOrderId":"missing"}`, true) // F, not found
	for i := 0; i < 3; i++ {
		o.call(t, http.MethodGet, "/no/such/path/"+strings.Repeat("x", i), "", false) // 404s: one series
	}
	for _, m := range []string{"M1", "M2", "BREW"} {
		o.call(t, m, completion, "", false) // made-up methods: one series
	}

	m := scrape(t, o)
	const reqs = "orderhub_http_requests_total"
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{reqs, map[string]string{"operation": "notifyOrderCompletion", "result_status": "S", "result_code": "SUCCESS"}, 2},
		{reqs, map[string]string{"operation": "notifyOrderCompletion", "result_code": "REPEAT_REQ_INCONSISTENT"}, 1},
		{reqs, map[string]string{"operation": "notifyOrderCompletion", "result_code": "INVALID_SIGNATURE"}, 1},
		{reqs, map[string]string{"operation": "notifyOrderCompletion", "result_code": "ACCESS_DENIED"}, 1},
		{reqs, map[string]string{"operation": "inquireOrderDetail", "result_status": "F", "result_code": "ORDER_NOT_EXIST"}, 1},
		{reqs, map[string]string{"operation": "unknown", "result_code": "INVALID_API", "url": "", "code": "200"}, 3},
		{reqs, map[string]string{"operation": "unknown", "method": "OTHER", "code": "405"}, 3},
		{"orderhub_http_request_duration_seconds", map[string]string{"operation": "notifyOrderCompletion"}, 5},
		{"orderhub_idempotency_total", map[string]string{"operation": "notifyOrderCompletion", "outcome": "new"}, 1},
		{"orderhub_idempotency_total", map[string]string{"operation": "notifyOrderCompletion", "outcome": "replay"}, 1},
		{"orderhub_idempotency_total", map[string]string{"operation": "notifyOrderCompletion", "outcome": "mismatch"}, 1},
		{"orderhub_signature_failures_total", map[string]string{"operation": "notifyOrderCompletion", "reason": "signature"}, 1},
		{"orderhub_signature_failures_total", map[string]string{"operation": "notifyOrderCompletion", "reason": "unknown_client"}, 1},
		{"orderhub_store_errors_total", nil, 0},
	} {
		if got := value(m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for _, s := range m[reqs] {
		if strings.HasPrefix(s.labels["method"], "M") || s.labels["method"] == "BREW" {
			t.Errorf("a made-up method became a label value: %v", s.labels)
		}
		if s.labels["host"] != "" {
			t.Errorf("the host label is caller-chosen and must stay empty: %v", s.labels)
		}
	}
	if len(m["go_goroutines"]) == 0 {
		t.Error("the Go runtime metrics are missing")
	}
}

func TestMetricsCountStoreFailures(t *testing.T) {
	o := newObserved(t, failingBegin{withOrder(t, "o1", domain.Ready)})
	rec := o.call(t, http.MethodPost, completion, `{"requestId":"r1","requestOrderId":"o1"}`, true)
	if !strings.Contains(rec.Body.String(), `"resultStatus":"U"`) {
		t.Fatalf("a store failure answers U: %s", rec.Body)
	}
	m := scrape(t, o)
	if got := value(m, "orderhub_store_errors_total", map[string]string{"call": "begin"}); got != 1 {
		t.Errorf("store errors on begin = %v, want 1", got)
	}
	if got := value(m, "orderhub_http_requests_total", map[string]string{"operation": "notifyOrderCompletion", "result_status": "U", "result_code": "UNKNOWN_EXCEPTION"}); got != 1 {
		t.Errorf("U answers = %v, want 1", got)
	}
}
