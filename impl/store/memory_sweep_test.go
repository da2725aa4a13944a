package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/domain"
)

// TestMemorySweep: what expired and is never touched again is dropped by
// later writes, a bounded number of deadlines per write; what is live, or
// was given a later deadline since, stays.
func TestMemorySweep(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2024, 5, 4, 0, 0, 0, 0, time.UTC)
	m := NewMemory(func() time.Time { return now })
	answer := func(k Key, retention time.Duration, e Effect) {
		t.Helper()
		b, err := m.Begin(ctx, k, "fp", time.Minute)
		if err != nil || b.State != Started {
			t.Fatalf("Begin(%+v) = %+v, %v", k, b, err)
		}
		if err := m.Commit(ctx, k, b.Token, []byte("ok"), retention, e); err != nil {
			t.Fatal(err)
		}
	}
	const n = 100
	for i := range n {
		o := domain.Order{RequestOrderID: fmt.Sprint("o", i), Status: domain.Completed}
		answer(Key{Op: "op", ClientID: "c", RequestID: fmt.Sprint("r", i), Scope: ScopeOrder, ScopeID: o.RequestOrderID},
			10*time.Minute, PutOrderEffect{Order: o, Retention: 10 * time.Minute})
		a := domain.Audit{TradeID: fmt.Sprint("t", i), DeliveryBatchID: "b1", Status: domain.AuditAccept}
		answer(Key{Op: "op", ClientID: "c", RequestID: fmt.Sprint("a", i), Scope: ScopeTrade, ScopeID: a.TradeID},
			10*time.Minute, RecordAuditEffect{Audit: a, Retention: 10 * time.Minute})
	}
	// Kept: one answer forever (with its order), one order an answer
	// keeps longer than its own retention.
	answer(Key{Op: "op", ClientID: "c", RequestID: "forever", Scope: ScopeOrder, ScopeID: "o0"}, 0, nil)
	answer(Key{Op: "op", ClientID: "c", RequestID: "longer", Scope: ScopeOrder, ScopeID: "o1"}, time.Hour, nil)

	now = now.Add(30 * time.Minute)
	for i := 0; len(m.deadlines) > 0 && m.deadlines[0].at.Before(now); i++ {
		if i > 2*n*5/sweepBatch { // at most five deadlines per answer
			t.Fatalf("%d writes later, %d deadlines are left", i, len(m.deadlines))
		}
		before := len(m.deadlines)
		// Writes that touch none of them, and set no deadline.
		if _, err := m.PutOrder(ctx, domain.Order{RequestOrderID: fmt.Sprint("new", i), Status: domain.Ready}); err != nil {
			t.Fatal(err)
		}
		if swept := before - len(m.deadlines); swept > sweepBatch {
			t.Fatalf("one write swept %d deadlines, more than %d", swept, sweepBatch)
		}
	}
	for id := range m.orders {
		if id != "o0" && id != "o1" && m.orders[id].order.Status == domain.Completed {
			t.Errorf("expired order %q is still kept", id)
		}
	}
	if _, ok := m.orders["o0"]; !ok {
		t.Error("the order an answer kept forever speaks of is gone")
	}
	if _, ok := m.orders["o1"]; !ok {
		t.Error("the order an answer of an hour speaks of is gone")
	}
	if len(m.audits) != 0 {
		t.Errorf("%d expired trades are still kept", len(m.audits))
	}
	if len(m.records) != 2 || len(m.claims) != 2 {
		t.Errorf("%d records and %d claims kept, want the two still live", len(m.records), len(m.claims))
	}
}
