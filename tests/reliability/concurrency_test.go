package reliability

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

// TestConcurrentDuplicates: "10,000 notifications in bursts of 50 identical
// requestIds from many goroutines → exactly one effect per requestId and
// identical answers." orderhub runs in the process (httpapi.New over the
// Redis store, on a real redis-server), so that a wrapping store can count
// the commits. The copies of a burst leave together from goroutines of
// their own; a copy that meets the first one in progress is answered U and
// sent again until its answer is final, as a partner would.
func TestConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	sc := scaleOf(t)
	start := time.Now()
	k := keys(t)
	// Copies of one answer are compared byte for byte; the first of each
	// burst is checked against the contract and the signature.
	b := &burstRun{t: t, sc: sc, p: newPartner(t, "burst-client", k, checkEvery(false))}
	b.serveInProcess(k)
	notes := b.notesWithOrders()
	if t.Failed() {
		return
	}
	if err := markCreated(t.Context(), b.counting.Store, notes); err != nil {
		t.Fatal(err)
	}
	b.sendBursts(notes)
	effects, dups := b.committedOncePerRequestID(notes)
	dups += b.stateAgrees(notes)
	t.Logf("bursts: requestIds=%d copies=%d (x%d in flight) notifications=%d requests-sent=%d U-in-progress=%d effects=%d/%d duplicates=%d answers-not-identical=%d runtime=%s",
		len(notes), sc.burstCopies, sc.burstParallel, len(notes)*sc.burstCopies, b.sends.Load(), b.unknowns.Load(),
		effects, len(notes), dups, b.mismatches.Load(), time.Since(start).Round(time.Millisecond))
}

// burstRun is TestConcurrentDuplicates under way: the in-process orderhub,
// its counting store, the partner, and the figures of the bursts.
type burstRun struct {
	t                           *testing.T
	sc                          scale
	p                           *partner
	url                         string
	counting                    *testkit.CountingStore
	sends, unknowns, mismatches atomic.Int64
}

// serveInProcess runs orderhub in the test process, over a store that
// counts the commits of a real redis-server's Redis store.
func (b *burstRun) serveInProcess(k testKeys) {
	t := b.t
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	b.counting = testkit.NewCountingStore(store.NewRedis(rdb))
	h, err := httpapi.New(b.counting, httpapi.Config{
		Clients:        testkit.Clients(t, testkit.Entry(t, b.p.clientID, &k.client.PublicKey)),
		SigningKey:     k.orderhub,
		AdminToken:     adminToken,
		RequestTimeout: 10 * time.Second,
		Lease:          30 * time.Second,
		TimeWindow:     time.Hour, // each request is signed once, then sent for the whole run
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	b.url = hs.URL
}

// notesWithOrders signs the distinct notifications, once each: half
// completions of orders of their own, created here from 8 goroutines,
// half audits of batches of their own.
func (b *burstRun) notesWithOrders() []*note {
	notes := make([]*note, b.sc.burstRequestIDs)
	for i := range notes {
		rid := fmt.Sprintf("burst-r%d", i)
		if i%2 == 0 {
			notes[i] = b.p.completion(rid, fmt.Sprintf("burst-order%d", i))
		} else {
			notes[i] = b.p.audit(rid, fmt.Sprintf("burst-trade%d", i%10), fmt.Sprintf("b%d", i))
		}
	}
	orders := make(chan *note, len(notes))
	for _, n := range notes {
		if n.path == pathCompletion {
			orders <- n
		}
	}
	close(orders)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := range orders {
				if err := b.p.putOrder(b.t.Context(), b.url, n.orderID, models.OrderStatusReady); err != nil {
					b.t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	return notes
}

// sendBursts sends every note as a burst of identical copies, burstParallel
// bursts in flight at a time.
func (b *burstRun) sendBursts(notes []*note) {
	bursts := make(chan *note, len(notes))
	for _, n := range notes {
		bursts <- n
	}
	close(bursts)
	var wg sync.WaitGroup
	for range b.sc.burstParallel {
		wg.Go(func() {
			for n := range bursts {
				b.identicalFinalAnswers(n)
			}
		})
	}
	wg.Wait()
}

// identicalFinalAnswers sends burstCopies copies of n, which leave
// together, each until its answer is final: the first is S and conforms,
// every other is the first byte for byte.
func (b *burstRun) identicalFinalAnswers(n *note) {
	t, copies := b.t, b.sc.burstCopies
	finals, errs, sent := make([]answer, copies), make([]error, copies), make([]int, copies)
	go1 := make(chan struct{})
	var wg sync.WaitGroup
	for c := range copies {
		wg.Go(func() {
			<-go1 // all copies leave together
			finals[c], sent[c], errs[c] = b.p.untilFinal(t.Context(), b.url, n, 20*time.Second, 50*time.Millisecond)
		})
	}
	close(go1)
	wg.Wait()
	for c := range finals {
		b.sends.Add(int64(sent[c]))
		b.unknowns.Add(int64(sent[c] - 1))
		if errs[c] != nil {
			t.Errorf("copy %d: %v", c, errs[c])
			continue
		}
		if c == 0 {
			if !finals[0].is(models.ResultStatusSuccess) {
				t.Errorf("%v: %v, want S", n, finals[0])
			}
			if err := b.p.conforms(finals[0]); err != nil {
				t.Errorf("%v: %v", n, err)
			}
		} else if d := sameBytes(finals[0], finals[c]); errs[0] == nil && d != "" {
			b.mismatches.Add(1)
			t.Errorf("%v: copy %d got another final answer than copy 0: %s", n, c, d)
		}
	}
}

// committedOncePerRequestID: exactly one commit, with its effect, per
// requestId; nothing else. It returns the requestIds committed once, and
// those committed more often.
func (b *burstRun) committedOncePerRequestID(notes []*note) (effects, dups int) {
	commits := 0
	for _, n := range notes {
		c, e := b.counting.Count(n.requestID)
		commits += c
		switch {
		case c == 1 && e == 1:
			effects++
		case c > 1 || e > 1:
			dups++
			b.t.Errorf("%v committed %d times, %d with an effect; want once", n, c, e)
		default:
			b.t.Errorf("%v committed %d times, %d with an effect; want once", n, c, e)
		}
	}
	if total, _ := b.counting.Totals(); total != commits {
		b.t.Errorf("%d commits for requestIds never sent", total-commits)
	}
	return effects, dups
}

// stateAgrees: the state, read through the operator API and the store,
// shows every effect once. It returns the duplicates it found.
func (b *burstRun) stateAgrees(notes []*note) (dups int) {
	t := b.t
	s, err := b.p.stateOf(t.Context(), b.url, notes)
	if err != nil {
		t.Fatal(err)
	}
	for _, stray := range s.strays {
		dups++
		t.Errorf("duplicate: %s", stray)
	}
	if len(s.applied) != len(notes) {
		t.Errorf("%d of %d notifications show their effect", len(s.applied), len(notes))
	}
	return dups + checkWrittenOnce(t, b.counting.Store, notes, "")
}
