// Package bench measures orderhub's request path: a first-time notification
// (signature verification, validation, begin, effect + record commit,
// response signing) against its replay (verification, one round trip, the
// stored signed bytes: no signing), on the in-memory store and on a real
// Redis. Each benchmark reports both costs and their ratio, measured in one
// run; BenchmarkRSA shows what one signature and one verification cost.
package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
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

func BenchmarkRSA(b *testing.B) {
	key := testkit.Key(b, 0)
	content := signature.Content("POST", "/v1/delivery/notifyDeliveryAuditResult", "bench", "1700000000000",
		[]byte(`{"requestId":"r1","tradeId":"T1","deliveryBatchId":"B1","deliveryAuditStatus":"ACCEPT"}`))
	sig, _ := signature.Sign(key, content)
	b.Run("sign", func(b *testing.B) {
		for range b.N {
			if _, err := signature.Sign(key, content); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for range b.N {
			if err := signature.Verify(&key.PublicKey, content, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// service is orderhub with one client, "bench", whose signer signs requests.
type service struct {
	h      http.Handler
	signer *signature.Signer
}

func newService(b *testing.B, st store.Store) service {
	caller := testkit.Key(b, 1)
	h, err := httpapi.New(st, httpapi.Config{Clients: testkit.Clients(b, testkit.Entry(b, "bench", &caller.PublicKey)), SigningKey: testkit.Key(b, 0), AdminToken: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return service{h: h, signer: &signature.Signer{ClientID: "bench", KeyVersion: 1, Key: caller}}
}

// signed builds a signed request; the caller's signing is not orderhub's
// cost, so benchmarks build requests outside the timed part.
func (s service) signed(b *testing.B, path, body string) http.Header {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := s.signer.Edit(req.Context(), req); err != nil {
		b.Fatal(err)
	}
	return req.Header
}

func (s service) post(b *testing.B, path, body string, header http.Header) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header = header.Clone()
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"resultStatus":"S"`) {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
	}
}

// benchFirstVsReplay sends each notification twice and times the two sends
// apart: first-ns and replay-ns per request, and replay/first.
func benchFirstVsReplay(b *testing.B, st store.Store) {
	s := newService(b, st)
	const path = "/v1/delivery/notifyDeliveryAuditResult"
	var first, replay time.Duration
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf(`{"requestId":"r%d","tradeId":"T%d","deliveryBatchId":"B1","deliveryAuditStatus":"ACCEPT"}`, i, i%64)
		b.StopTimer()
		header := s.signed(b, path, body)
		b.StartTimer()
		t0 := time.Now()
		s.post(b, path, body, header)
		t1 := time.Now()
		s.post(b, path, body, header)
		first += t1.Sub(t0)
		replay += time.Since(t1)
	}
	b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "first-ns/req")
	b.ReportMetric(float64(replay.Nanoseconds())/float64(b.N), "replay-ns/req")
	b.ReportMetric(float64(replay)/float64(first), "replay/first")
}

func benchInquire(b *testing.B, st store.Store) {
	s := newService(b, st)
	req := httptest.NewRequest(http.MethodPut, "/ops/orders/o1", strings.NewReader(`{"posOrderId":"p1","orderStatus":"PREPARING","extendInfo":{"table":"12"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer bench")
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("put order: %d %s", rec.Code, rec.Body)
	}
	const path, body = "/v2/pos/inquireOrderDetail", `{"requestOrderId":"o1"}`
	header := s.signed(b, path, body) // within the time window for the whole run
	b.ResetTimer()
	for range b.N {
		s.post(b, path, body, header)
	}
}
