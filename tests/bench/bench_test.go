// Package bench measures orderhub's request path: a first-time notification
// (validation, begin, effect + record commit) against its replay (one
// round trip, stored bytes), on the in-memory store and on a real Redis.
// Each benchmark reports both costs and their ratio, measured in one run.
package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/redistest"
)

func BenchmarkNotifyFirstVsReplay(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchFirstVsReplay(b, store.NewMemory(nil)) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		benchFirstVsReplay(b, store.NewRedis(srv.Client(b)))
	})
}

func BenchmarkInquire(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchInquire(b, store.NewMemory(nil)) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		benchInquire(b, store.NewRedis(srv.Client(b)))
	})
}

func newHandler(b *testing.B, st store.Store) http.Handler {
	h, err := httpapi.New(st, httpapi.Config{AdminToken: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func post(b *testing.B, h http.Handler, path, body string) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Client-Id", "bench")
	req.Header.Set("Request-Time", "1700000000000")
	req.Header.Set("Signature", "algorithm=RSA256, keyVersion=1, signature=x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"resultStatus":"S"`) {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
	}
}

// benchFirstVsReplay sends each notification twice and times the two sends
// apart: first-ns and replay-ns per request, and replay/first.
func benchFirstVsReplay(b *testing.B, st store.Store) {
	h := newHandler(b, st)
	var first, replay time.Duration
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf(`{"requestId":"r%d","tradeId":"T%d","deliveryBatchId":"B1","deliveryAuditStatus":"ACCEPT"}`, i, i%64)
		t0 := time.Now()
		post(b, h, "/v1/delivery/notifyDeliveryAuditResult", body)
		t1 := time.Now()
		post(b, h, "/v1/delivery/notifyDeliveryAuditResult", body)
		first += t1.Sub(t0)
		replay += time.Since(t1)
	}
	b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "first-ns/req")
	b.ReportMetric(float64(replay.Nanoseconds())/float64(b.N), "replay-ns/req")
	b.ReportMetric(float64(replay)/float64(first), "replay/first")
}

func benchInquire(b *testing.B, st store.Store) {
	h := newHandler(b, st)
	req := httptest.NewRequest(http.MethodPut, "/ops/orders/o1", strings.NewReader(`{"posOrderId":"p1","orderStatus":"PREPARING","extendInfo":{"table":"12"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer bench")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("put order: %d %s", rec.Code, rec.Body)
	}
	b.ResetTimer()
	for range b.N {
		post(b, h, "/v2/pos/inquireOrderDetail", `{"requestOrderId":"o1"}`)
	}
}
