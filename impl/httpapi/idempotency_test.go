package httpapi

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/testkit"
)

// panicOnce is a store whose next Commit panics.
type panicOnce struct {
	store.Store
	armed atomic.Bool
}

func (p *panicOnce) Commit(ctx context.Context, k store.Key, token string, response []byte, retention time.Duration, effect store.Effect) error {
	if p.armed.CompareAndSwap(true, false) {
		panic("store exploded")
	}
	return p.Store.Commit(ctx, k, token, response, retention, effect)
}

// TestPanicFreesTheRequestID: a panic inside an idempotent request answers
// U, and the retry runs at once instead of waiting out the lease.
func TestPanicFreesTheRequestID(t *testing.T) {
	st := &panicOnce{Store: store.NewMemory(nil)}
	now := time.Now().UTC()
	if _, err := st.PutOrder(t.Context(), domain.Order{RequestOrderID: "o", PosOrderID: "p", Status: domain.Preparing, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	h := newTestServiceOn(t, st)
	send := func() string {
		req := httptest.NewRequest("POST", "/v2/pds/order/notifyOrderCompletion", strings.NewReader(`{"requestId":"r","requestOrderId":"o"}`))
		req.Header.Set("Content-Type", "application/json")
		if err := h.signer.Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	st.armed.Store(true)
	if got := send(); !strings.Contains(got, `"resultStatus":"U"`) {
		t.Fatalf("during the panic: %s", got)
	}
	if got := send(); !strings.Contains(got, `"resultStatus":"S"`) {
		t.Fatalf("retry after the panic: %s (the requestId is still held)", got)
	}
}

// TestNewRefusesALeaseNotLongerThanARequest: a lease that can lapse while
// its request still runs would let a retry run the same request twice.
func TestNewRefusesALeaseNotLongerThanARequest(t *testing.T) {
	cfg := Config{Clients: clients.Static(nil), SigningKey: testkit.Key(t, 0), Lease: 5 * time.Second, RequestTimeout: 5 * time.Second}
	if _, err := New(store.NewMemory(nil), cfg); err == nil || !strings.Contains(err.Error(), "Lease") {
		t.Errorf("New with lease = timeout: %v", err)
	}
	cfg.Lease = 6 * time.Second
	if _, err := New(store.NewMemory(nil), cfg); err != nil {
		t.Errorf("New with lease > timeout: %v", err)
	}
}
