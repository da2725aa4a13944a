package orderhub_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

// lockedBuffer collects log lines from the request goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// At DEBUG, every Redis round trip of a request is logged, command names
// only, joined to the request line by its xRequestId; at INFO none is.
func TestDebugLogsRedisRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	own, caller := testkit.Key(t, 0), testkit.Key(t, 1)
	file := testkit.ClientsFile(t, testkit.Entry(t, "isv-1", &caller.PublicKey))
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var logs lockedBuffer
		svc, err := orderhub.Open(orderhub.Config{
			RedisURL: "redis://" + srv.Addr(), ClientsFile: file, SigningKey: own,
			Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level})),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Close() })
		req := httptest.NewRequest(http.MethodPost, "/v1/delivery/notifyDeliveryAuditResult",
			strings.NewReader(`{"requestId":"r-`+level.String()+`","tradeId":"T1","deliveryBatchId":"B1","deliveryAuditStatus":"ACCEPT"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", "trace-"+level.String())
		if err := (&signature.Signer{ClientID: "isv-1", KeyVersion: 1, Key: caller}).Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		svc.Handler.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"resultStatus":"S"`) {
			t.Fatalf("answer %s", rec.Body)
		}
		var trips []map[string]any
		for _, l := range logs.lines(t) {
			if l["msg"] == "redis round trip" {
				trips = append(trips, l)
			}
		}
		if level == slog.LevelInfo {
			if len(trips) != 0 {
				t.Errorf("round trips logged at INFO: %v", trips)
			}
			continue
		}
		if len(trips) == 0 {
			t.Fatal("no round trip logged at DEBUG")
		}
		for _, tr := range trips {
			if tr["xRequestId"] != "trace-DEBUG" || tr["cmds"] == "" || tr["tookMs"] == nil {
				t.Errorf("round trip line %v: want the request's xRequestId, the commands and the time", tr)
			}
			if strings.Contains(strings.ToLower(tr["cmds"].(string)), "t1") {
				t.Errorf("arguments logged: %v", tr)
			}
		}
	}
}

// go-redis's own messages come out as orderhub's JSON lines.
func TestRedisLogsTo(t *testing.T) {
	var logs lockedBuffer
	orderhub.RedisLogsTo(slog.New(slog.NewJSONHandler(&logs, nil)))
	t.Cleanup(func() { orderhub.RedisLogsTo(slog.New(slog.NewTextHandler(os.Stderr, nil))) })
	own, caller := testkit.Key(t, 0), testkit.Key(t, 1)
	svc, err := orderhub.Open(orderhub.Config{
		RedisURL:    "redis://127.0.0.1:1?dial_timeout=100ms&max_retries=-1", // nothing listens on port 1
		ClientsFile: testkit.ClientsFile(t, testkit.Entry(t, "isv-1", &caller.PublicKey)), SigningKey: own,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	_ = svc.Ping(t.Context()) // fails, and go-redis says so
	var found bool
	for _, l := range logs.lines(t) {
		found = found || (l["msg"] == "redis client" && l["level"] == "WARN" && l["detail"] != "")
	}
	if !found {
		t.Errorf("no WARN line from go-redis for a failed dial: %v", logs.lines(t))
	}
}

// TestRoundTripsPerNotification counts Redis round trips from the DEBUG
// lines: a first-time notification makes two (Begin, which reads the order
// with the claim, and Commit), a replay one, without rate limits.
func TestRoundTripsPerNotification(t *testing.T) {
	srv := redistest.Start(t)
	own, caller := testkit.Key(t, 0), testkit.Key(t, 1)
	var logs lockedBuffer
	svc, err := orderhub.Open(orderhub.Config{
		RedisURL: "redis://" + srv.Addr(), SigningKey: own, AdminToken: "t",
		ClientsFile: testkit.ClientsFile(t, testkit.Entry(t, "isv-1", &caller.PublicKey)),
		Logger:      slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	for _, id := range []string{"warm", "o1"} {
		put := httptest.NewRequest(http.MethodPut, "/ops/orders/"+id, strings.NewReader(`{"posOrderId":"p1","orderStatus":"READY"}`))
		put.Header.Set("Content-Type", "application/json")
		put.Header.Set("Authorization", "Bearer t")
		svc.Handler.ServeHTTP(httptest.NewRecorder(), put)
	}

	trips := func(xRequestID string) int {
		n := 0
		for _, l := range logs.lines(t) {
			if l["msg"] == "redis round trip" && l["xRequestId"] == xRequestID {
				n++
			}
		}
		return n
	}
	// The first pass warms up what a fresh process does once (the
	// connection's greeting, loading the scripts); the second is counted.
	type call struct {
		path, body, id string
		want           int
	}
	calls := []call{
		{"/v2/pds/order/notifyOrderCompletion", `{"requestId":"r1","requestOrderId":"o1"}`, "first-completion", 2},
		{"/v2/pds/order/notifyOrderCompletion", `{"requestId":"r1","requestOrderId":"o1"}`, "replay-completion", 1},
		{"/v2/pos/notifyOrderChange", `{"requestId":"r2","requestOrderId":"o1","deliveryStatus":"OUT"}`, "first-change", 2},
		{"/v1/delivery/notifyDeliveryAuditResult", `{"requestId":"r3","tradeId":"T1","deliveryBatchId":"B1","deliveryAuditStatus":"ACCEPT"}`, "first-audit", 2},
		{"/v1/delivery/notifyDeliveryAuditResult", `{"requestId":"r3","tradeId":"T1","deliveryBatchId":"B1","deliveryAuditStatus":"ACCEPT"}`, "replay-audit", 1},
	}
	for _, tc := range calls {
		warm := tc
		warm.body = strings.ReplaceAll(strings.ReplaceAll(tc.body, `"o1"`, `"warm"`), `"requestId":"`, `"requestId":"warm-`)
		warm.id, warm.want = "warm-"+tc.id, -1
		calls = append([]call{warm}, calls...)
	}
	for _, tc := range calls {
		req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", tc.id)
		if err := (&signature.Signer{ClientID: "isv-1", KeyVersion: 1, Key: caller}).Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		svc.Handler.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"resultStatus":"S"`) {
			t.Fatalf("%s: %s", tc.id, rec.Body)
		}
		if got := trips(tc.id); tc.want >= 0 && got != tc.want {
			for _, l := range logs.lines(t) {
				if l["xRequestId"] == tc.id {
					t.Logf("%v", l)
				}
			}
			t.Errorf("%s: %d Redis round trips, want %d", tc.id, got, tc.want)
		}
	}
}
