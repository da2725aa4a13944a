package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/impl/store/storetest"
)

// fakeClock lets tests move Memory's time without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 5, 4, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		clock := newFakeClock()
		return storetest.Harness{
			Store:       store.NewMemory(clock.Now),
			ExpireLease: func(store.Key) { clock.Advance(storetest.Lease) },
		}
	})
}

// Time-dependent behaviour the shared suite cannot reach on a real Redis.
func TestMemoryExpiry(t *testing.T) {
	const lease = 30 * time.Second
	ctx := t.Context()
	clock := newFakeClock()
	m := store.NewMemory(clock.Now)
	key := func(req, order string) store.Key {
		return store.Key{Op: "op", ClientID: "c", RequestID: req, Scope: store.ScopeOrder, ScopeID: order}
	}
	begin := func(k store.Key, fp string) store.Begun {
		t.Helper()
		b, err := m.Begin(ctx, k, fp, lease)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	commit := func(k store.Key, fp string, retention time.Duration) {
		t.Helper()
		if err := m.Commit(ctx, k, begin(k, fp).Token, []byte("ok"), retention, nil); err != nil {
			t.Fatal(err)
		}
	}
	wantState := func(k store.Key, fp string, want store.BeginState) {
		t.Helper()
		if got := begin(k, fp).State; got != want {
			t.Fatalf("Begin(%+v, %q) = %v, want %v", k, fp, got, want)
		}
	}

	// A retry after a U refreshes the claim: it outlives the first
	// attempt's lease, so a reuse for another order is still caught.
	first := begin(key("retry", "A"), "fp")
	if err := m.Release(ctx, key("retry", "A"), first.Token); err != nil {
		t.Fatal(err)
	}
	clock.Advance(lease - time.Second)
	wantState(key("retry", "A"), "fp", store.Started)
	clock.Advance(2 * time.Second) // past the first attempt's lease
	wantState(key("retry", "B"), "other", store.Mismatch)

	commit(key("hour", "A"), "fp", time.Hour)
	commit(key("forever", "A"), "fp", 0)

	// The claim lives as long as the record, not just the lease. (B before
	// A: a Begin on A would claim the requestId afresh.)
	clock.Advance(time.Hour - time.Nanosecond)
	wantState(key("hour", "B"), "other", store.Mismatch)
	wantState(key("hour", "A"), "fp", store.Done)

	clock.Advance(time.Nanosecond)
	wantState(key("hour", "A"), "fp", store.Started)

	clock.Advance(100 * 365 * 24 * time.Hour)
	wantState(key("forever", "B"), "other", store.Mismatch)
	wantState(key("forever", "A"), "fp", store.Done)
}
