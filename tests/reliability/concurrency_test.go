package reliability

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
	"github.com/orderhub/orderhub/tests/redistest"
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
	ctx := t.Context()
	k := keys(t)

	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	counting := &countingStore{Store: store.NewRedis(rdb), commits: map[string]int{}, effects: map[string]int{}}
	// Copies of one answer are compared byte for byte; the first of each
	// burst is checked against the contract and the signature.
	p := newPartner(t, "burst-client", k, checkEvery(false))
	cat, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	ops := cat.IDs(openapi.Partner)
	reg, err := clients.Parse(clientsYAML(t, p.clientID, &k.client.PublicKey), ops)
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(counting, httpapi.Config{
		Clients:        clients.Static(reg),
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

	// The distinct notifications, signed once each: half completions of
	// orders of their own, half audits of batches of their own.
	notes := make([]*note, sc.burstRequestIDs)
	var wg sync.WaitGroup
	for i := range notes {
		rid := fmt.Sprintf("burst-r%d", i)
		if i%2 == 0 {
			notes[i] = p.completion(rid, fmt.Sprintf("burst-order%d", i))
		} else {
			notes[i] = p.audit(rid, fmt.Sprintf("burst-trade%d", i%10), fmt.Sprintf("b%d", i))
		}
	}
	orders := make(chan *note, len(notes))
	for _, n := range notes {
		if n.path == pathCompletion {
			orders <- n
		}
	}
	close(orders)
	for range 8 {
		wg.Go(func() {
			for n := range orders {
				if err := p.putOrder(ctx, hs.URL, n.orderID, models.OrderStatusReady); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := markCreated(ctx, counting.Store, notes); err != nil {
		t.Fatal(err)
	}

	var sends, unknowns, mismatches atomic.Int64
	bursts := make(chan *note, len(notes))
	for _, n := range notes {
		bursts <- n
	}
	close(bursts)
	for range sc.burstParallel {
		wg.Go(func() {
			for n := range bursts {
				finals := make([]answer, sc.burstCopies)
				errs := make([]error, sc.burstCopies)
				sent := make([]int, sc.burstCopies)
				go1 := make(chan struct{})
				var copies sync.WaitGroup
				for c := range sc.burstCopies {
					copies.Go(func() {
						<-go1 // all copies leave together
						finals[c], sent[c], errs[c] = p.untilFinal(ctx, hs.URL, n, 20*time.Second, 50*time.Millisecond)
					})
				}
				close(go1)
				copies.Wait()
				for c := range finals {
					sends.Add(int64(sent[c]))
					unknowns.Add(int64(sent[c] - 1))
					if errs[c] != nil {
						t.Errorf("copy %d: %v", c, errs[c])
						continue
					}
					if c == 0 {
						if !finals[0].is(models.ResultStatusSuccess) {
							t.Errorf("%v: %v, want S", n, finals[0])
						}
						if err := p.conforms(finals[0]); err != nil {
							t.Errorf("%v: %v", n, err)
						}
					} else if d := sameBytes(finals[0], finals[c]); errs[0] == nil && d != "" {
						mismatches.Add(1)
						t.Errorf("%v: copy %d got another final answer than copy 0: %s", n, c, d)
					}
				}
			}
		})
	}
	wg.Wait()

	// Exactly one commit, with its effect, per requestId; nothing else.
	effects, dups, commits := 0, 0, 0
	for _, n := range notes {
		c, e := counting.count(n.requestID)
		commits += c
		switch {
		case c == 1 && e == 1:
			effects++
		case c > 1 || e > 1:
			dups++
			t.Errorf("%v committed %d times, %d with an effect; want once", n, c, e)
		default:
			t.Errorf("%v committed %d times, %d with an effect; want once", n, c, e)
		}
	}
	if stray := counting.total() - commits; stray != 0 {
		t.Errorf("%d commits for requestIds never sent", stray)
	}
	// And the state agrees, read through the operator API and the store.
	s, err := p.stateOf(ctx, hs.URL, notes)
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
	writes, err := completionWrites(ctx, counting.Store, notes)
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range writes {
		if w != 1 {
			dups++
			t.Errorf("order %s written %d times by its completion, want once", id, w)
		}
	}
	t.Logf("bursts: requestIds=%d copies=%d (x%d in flight) notifications=%d requests-sent=%d U-in-progress=%d effects=%d/%d duplicates=%d answers-not-identical=%d runtime=%s",
		len(notes), sc.burstCopies, sc.burstParallel, len(notes)*sc.burstCopies, sends.Load(), unknowns.Load(),
		effects, len(notes), dups, mismatches.Load(), time.Since(start).Round(time.Millisecond))
}

// countingStore counts, per requestId, the commits that succeeded and
// those of them that wrote a business effect.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	commits map[string]int
	effects map[string]int
}

func (s *countingStore) Commit(ctx context.Context, k store.Key, token string, response []byte, retention time.Duration, effect store.Effect) error {
	err := s.Store.Commit(ctx, k, token, response, retention, effect)
	if err == nil {
		s.mu.Lock()
		s.commits[k.RequestID]++
		if effect != nil {
			s.effects[k.RequestID]++
		}
		s.mu.Unlock()
	}
	return err
}

func (s *countingStore) count(requestID string) (commits, effects int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits[requestID], s.effects[requestID]
}

func (s *countingStore) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.commits {
		n += c
	}
	return n
}
