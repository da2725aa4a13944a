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
	return o.lines(t, "request")
}

// lines are the log lines with message msg written so far, decoded.
func (o *observed) lines(t *testing.T, msg string) []map[string]any {
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
		if l["msg"] == msg {
			lines = append(lines, l)
		}
	}
	return lines
}

func newObserved(t *testing.T, st store.Store) *observed {
	return newObservedAt(t, st, slog.LevelInfo)
}

// newObservedAt logs at level and above.
func newObservedAt(t *testing.T, st store.Store, level slog.Level) *observed {
	o := &observed{}
	o.testService = newTestServiceOn(t, st, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(o, &slog.HandlerOptions{Level: level}))
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
	body := `{"requestId":"r-log","requestOrderId":"order-secret-value"}`
	rec := o.call(t, http.MethodPost, completion, body, true, "X-Request-Id", "trace-log")
	signatureSent := rec.Header().Get("Signature")
	o.call(t, http.MethodPost, completion, body, true, "X-Request-Id", "trace-replay")
	o.call(t, http.MethodPost, completion, `{"requestId":"r-log","requestOrderId":"other"}`, true, "X-Request-Id", "trace-mismatch")
	o.call(t, http.MethodPost, completion, `{"requestId":"r-bad","requestOrderId":"x"}`, false, "X-Request-Id", "trace-unsigned", "Client-Id", "c")
	o.call(t, http.MethodPost, completion, `{"requestId":"r-bad","requestOrderId":"x"}`, false, "X-Request-Id", "trace-stranger", "Client-Id", "nobody")
	o.call(t, http.MethodGet, "/ops/orders/order-secret-value", "", false, "X-Request-Id", "trace-ops", "Authorization", "Bearer tok")
	o.call(t, http.MethodGet, "/ops/orders/order-secret-value", "", false, "X-Request-Id", "trace-token", "Authorization", "Bearer wrong")
	// Successful probes are not logged at INFO.
	o.call(t, http.MethodGet, "/healthz", "", false)
	o.call(t, http.MethodGet, "/readyz", "", false)
	o.call(t, http.MethodGet, "/metrics", "", false)

	lines := o.requestLines(t)
	pick := func(l map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			if v, ok := l[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	keys := []string{"xRequestId", "operation", "clientId", "requestId", "idempotency", "resultStatus", "resultCode", "reason", "status", "method", "path"}
	want := []map[string]any{
		{"xRequestId": "trace-log", "operation": "notifyOrderCompletion", "clientId": "c", "requestId": "r-log", "idempotency": "new",
			"resultStatus": "S", "resultCode": "SUCCESS", "status": 200.0, "method": "POST", "path": completion},
		{"xRequestId": "trace-replay", "operation": "notifyOrderCompletion", "clientId": "c", "requestId": "r-log", "idempotency": "replay",
			"resultStatus": "S", "resultCode": "SUCCESS", "status": 200.0, "method": "POST", "path": completion},
		{"xRequestId": "trace-mismatch", "operation": "notifyOrderCompletion", "clientId": "c", "requestId": "r-log", "idempotency": "mismatch",
			"resultStatus": "F", "resultCode": "REPEAT_REQ_INCONSISTENT", "status": 200.0, "method": "POST", "path": completion},
		{"xRequestId": "trace-unsigned", "operation": "notifyOrderCompletion", "clientId": "c", "reason": "malformed",
			"resultStatus": "F", "resultCode": "INVALID_SIGNATURE", "status": 200.0, "method": "POST", "path": completion},
		{"xRequestId": "trace-stranger", "operation": "notifyOrderCompletion", "clientId": "nobody", "reason": "unknown_client",
			"resultStatus": "F", "resultCode": "ACCESS_DENIED", "status": 200.0, "method": "POST", "path": completion},
		{"xRequestId": "trace-ops", "operation": "getOrder",
			"resultStatus": "S", "resultCode": "SUCCESS", "status": 200.0, "method": "GET", "path": "/ops/orders/order-secret-value"},
		{"xRequestId": "trace-token", "operation": "getOrder", "reason": "wrong_bearer_token",
			"resultStatus": "F", "resultCode": "ACCESS_DENIED", "status": 401.0, "method": "GET", "path": "/ops/orders/order-secret-value"},
	}
	if len(lines) != len(want) {
		t.Fatalf("want one line per request but the probes (%d), got %d: %v", len(want), len(lines), lines)
	}
	for i, l := range lines {
		if diff := cmp.Diff(want[i], pick(l, keys...)); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", i, diff)
		}
		if ms, ok := l["latencyMs"].(float64); !ok || ms <= 0 {
			t.Errorf("line %d has no latencyMs: %v", i, l)
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

// At DEBUG the probes are logged too.
func TestProbesLogAtDebug(t *testing.T) {
	o := newObservedAt(t, store.NewMemory(nil), slog.LevelDebug)
	o.call(t, http.MethodGet, "/healthz", "", false)
	lines := o.requestLines(t)
	if len(lines) != 1 || lines[0]["level"] != "DEBUG" || lines[0]["path"] != "/healthz" {
		t.Errorf("probe lines at DEBUG: %v", lines)
	}
}

// An unexpected error's line names the request and operation, so that it
// joins the request line.
func TestUnexpectedErrorLineJoinsItsRequest(t *testing.T) {
	o := newObserved(t, failingBegin{withOrder(t, "o1", domain.Ready)})
	o.call(t, http.MethodPost, completion, `{"requestId":"r1","requestOrderId":"o1"}`, true, "X-Request-Id", "trace-err")
	errs := o.lines(t, "unexpected error")
	if len(errs) != 1 || errs[0]["xRequestId"] != "trace-err" || errs[0]["operation"] != "notifyOrderCompletion" {
		t.Errorf("unexpected error lines: %v", errs)
	}
	if req := o.requestLines(t); len(req) != 1 || req[0]["xRequestId"] != "trace-err" || req[0]["resultStatus"] != "U" {
		t.Errorf("request lines: %v", req)
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
			case m.Gauge != nil:
				s.value = m.Gauge.GetValue()
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
		{reqs, map[string]string{"operation": "unknown", "result_code": "INVALID_API", "code": "200"}, 3},
		{reqs, map[string]string{"operation": "unknown", "method": "OTHER", "code": "405"}, 3},
		{"orderhub_http_request_duration_seconds", map[string]string{"operation": "notifyOrderCompletion"}, 5},
		{"orderhub_idempotency_total", map[string]string{"operation": "notifyOrderCompletion", "outcome": "new"}, 1},
		{"orderhub_idempotency_total", map[string]string{"operation": "notifyOrderCompletion", "outcome": "replay"}, 1},
		{"orderhub_idempotency_total", map[string]string{"operation": "notifyOrderCompletion", "outcome": "mismatch"}, 1},
		{"orderhub_signature_failures_total", map[string]string{"operation": "notifyOrderCompletion", "reason": "malformed"}, 1},
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
		if _, ok := s.labels["url"]; ok {
			t.Errorf("the path is caller-chosen: no url label: %v", s.labels)
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

// The series alerts read exist before any traffic, at zero, and the
// histograms of sizes are by operation only.
func TestMetricsExistAtZero(t *testing.T) {
	o := newObserved(t, store.NewMemory(nil))
	m := scrape(t, o)
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"orderhub_http_requests_total", map[string]string{"operation": "notifyDeliveryAuditResult", "result_status": "U"}},
		{"orderhub_http_requests_total", map[string]string{"operation": "inquireOrderDetail", "result_status": "S"}},
		{"orderhub_http_request_duration_seconds", map[string]string{"operation": "notifyOrderCompletion"}},
		{"orderhub_store_errors_total", map[string]string{"call": "commit"}},
		{"orderhub_store_errors_total", map[string]string{"call": "ping"}},
		{"orderhub_signature_failures_total", map[string]string{"operation": "inquireOrderDetail", "reason": "request_time"}},
		{"orderhub_signature_failures_total", map[string]string{"operation": "notifyOrderCompletion", "reason": "unknown_key_version"}},
		{"orderhub_idempotency_total", map[string]string{"operation": "notifyDeliveryAuditResult", "outcome": "in_progress"}},
		{"orderhub_unsigned_refusals_total", map[string]string{"why": "budget"}},
	} {
		found := false
		for _, s := range m[tc.name] {
			match := true
			for k, v := range tc.labels {
				match = match && s.labels[k] == v
			}
			if match {
				found = true
				if s.value != 0 {
					t.Errorf("%s%v = %v before any traffic", tc.name, tc.labels, s.value)
				}
			}
		}
		if !found {
			t.Errorf("%s%v does not exist before any traffic", tc.name, tc.labels)
		}
	}
	if b := m["orderhub_build_info"]; len(b) != 1 || b[0].value != 1 || b[0].labels["goversion"] == "" || b[0].labels["crypto"] == "" || b[0].labels["revision"] == "" {
		t.Errorf("orderhub_build_info: %+v", b)
	}
	for _, name := range []string{"orderhub_http_request_size_bytes", "orderhub_http_response_size_bytes"} {
		for _, s := range m[name] {
			if len(s.labels) != 1 || s.labels["operation"] == "" {
				t.Errorf("%s has labels %v, want operation only", name, s.labels)
			}
		}
	}
	if up := m["orderhub_store_up"]; len(up) != 1 || up[0].value != 1 {
		t.Errorf("orderhub_store_up: %+v", up)
	}
}

// failingPing is a store that does not answer, as Redis when it is down.
type failingPing struct{ store.Store }

func (failingPing) Ping(context.Context) error { return errors.New("dial tcp: connection refused") }

func TestStoreUpFollowsPing(t *testing.T) {
	o := newObserved(t, failingPing{store.NewMemory(nil)})
	m := scrape(t, o)
	if up := m["orderhub_store_up"]; len(up) != 1 || up[0].value != 0 {
		t.Errorf("orderhub_store_up with the store down: %+v, want 0", up)
	}
	// The registry gathers collectors concurrently: the failed ping of a
	// scrape may be counted after the counter was read. The next scrape
	// shows it.
	m = scrape(t, o)
	if got := value(m, "orderhub_store_errors_total", map[string]string{"call": "ping"}); got < 1 {
		t.Errorf("store errors on ping = %v, want at least 1", got)
	}
}
