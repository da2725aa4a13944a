package faults

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTakeMatchesAndCounts(t *testing.T) {
	rs := New(func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)) })
	if rs.Any() {
		t.Fatal("a new set has rules")
	}
	r := rs.Add(Rule{Operation: "op", Match: Match{RequestID: "r1", ClientID: "c1"}, Action: Answer, ResultCode: "UNKNOWN_EXCEPTION", Times: 2})
	if r.ID == "" || r.Remaining != 2 || !r.CreatedAt.Equal(time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)) || r.CreatedAt.Location() != time.UTC {
		t.Errorf("added: %+v", r)
	}
	for _, c := range []Call{
		{Operation: "other", ClientID: "c1", RequestID: "r1"},
		{Operation: "op", ClientID: "c2", RequestID: "r1"},
		{Operation: "op", ClientID: "c1", RequestID: "r2"},
	} {
		if got, ok := rs.Take(c); ok {
			t.Errorf("%+v matched %+v", c, got)
		}
	}
	call := Call{Operation: "op", ClientID: "c1", RequestID: "r1", TradeID: "t"}
	for i := 1; i <= 2; i++ {
		got, ok := rs.Take(call)
		if !ok || got.Injected != i || got.Remaining != 2-i {
			t.Errorf("take %d: %+v %v", i, got, ok)
		}
	}
	if _, ok := rs.Take(call); ok || rs.Any() || len(rs.List()) != 0 {
		t.Errorf("a rule used up is still in force: %+v", rs.List())
	}
}

func TestOldestFirstDeleteAndClear(t *testing.T) {
	rs := New(nil)
	a := rs.Add(Rule{Operation: "op", Action: Delay, Delay: time.Second})
	b := rs.Add(Rule{Operation: "op", Action: DropBeforeProcessing})
	if got, _ := rs.Take(Call{Operation: "op"}); got.ID != a.ID {
		t.Errorf("took %s, want the oldest, %s", got.ID, a.ID)
	}
	rs.Delete(a.ID)
	rs.Delete(a.ID) // gone already: no error, no change
	if got, _ := rs.Take(Call{Operation: "op"}); got.ID != b.ID {
		t.Errorf("took %s after deleting %s, want %s", got.ID, a.ID, b.ID)
	}
	if l := rs.List(); len(l) != 1 || l[0].Injected != 1 {
		t.Errorf("list: %+v", l)
	}
	rs.Clear()
	if rs.Any() {
		t.Error("rules after Clear")
	}
}

// Times is exact under concurrent calls: a rule acts on n calls, never more.
func TestTimesUnderConcurrency(t *testing.T) {
	rs := New(nil)
	rs.Add(Rule{Operation: "op", Action: Answer, ResultCode: "UNKNOWN_EXCEPTION", Times: 7})
	var taken atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, ok := rs.Take(Call{Operation: "op"}); ok {
				taken.Add(1)
			}
		})
	}
	wg.Wait()
	if taken.Load() != 7 {
		t.Errorf("%d calls taken, want 7", taken.Load())
	}
}
