package store_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/domain"
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
			Age:         clock.Advance,
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

// TestMemoryFootprint measures the in-memory store's growth (live heap,
// runtime.MemStats after a GC) per stored answer and per final order, with
// ids of the partners' usual lengths and a stored answer of the size
// orderhub writes (about 680 bytes); the README quotes it. The ceilings
// catch a change that makes them grow.
func TestMemoryFootprint(t *testing.T) {
	const n = 20000
	ctx := t.Context()
	m := store.NewMemory(newFakeClock().Now)
	resp := []byte(strings.Repeat("x", 680))
	fp := strings.Repeat("f", 64) // a SHA-256 in hex
	heap := func() uint64 {
		runtime.GC()
		var s runtime.MemStats
		runtime.ReadMemStats(&s)
		return s.HeapAlloc
	}
	// Made anew for each call: the store keeps the only copy, as it does
	// of a request's.
	id := func(i int) string { return fmt.Sprintf("pds_2109220000232584_2022050400309%09d_1", i) }
	key := func(i int) store.Key {
		return store.Key{Op: "notifyOrderCompletion", ClientID: "2022091400000001", RequestID: id(i) + "_1717200900", Scope: store.ScopeOrder, ScopeID: id(i)}
	}
	for _, c := range []struct {
		what string
		add  func(i int) error
		max  uint64
	}{
		{"stored answer (record, claim and their deadlines)", func(i int) error {
			k := key(i)
			b, err := m.Begin(ctx, k, fp, time.Minute)
			if err != nil {
				return err
			}
			return m.Commit(ctx, k, b.Token, resp, 72*time.Hour, nil)
		}, 3072},
		{"final order (and its deadline)", func(i int) error {
			o := domain.Order{RequestOrderID: id(i), PosOrderID: fmt.Sprint("pos-20220504-", i), Status: domain.Completed, ExtendInfo: []byte(`{"tableNo":"12","remark":"no onions"}`)}
			_, err := m.PutOrderRetained(ctx, o, 720*time.Hour)
			return err
		}, 1024},
	} {
		before := heap()
		for i := range n {
			if err := c.add(i); err != nil {
				t.Fatal(err)
			}
		}
		per := (heap() - before) / n
		t.Logf("%s: %d bytes each", c.what, per)
		if per > c.max {
			t.Errorf("%s: %d bytes each, more than %d", c.what, per, c.max)
		}
	}
	runtime.KeepAlive(m)
}
