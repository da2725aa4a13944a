package failover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

// ORDERHUB_REDIS_MIN_REPLICAS: an answer only once the replicas have the
// commit. TestReplicaPaused (go test) freezes the replica of a single
// node; the kill loop (make soak) kills masters of a cluster in turn.

const pathCompletion = "/v2/pds/order/notifyOrderCompletion"

// note is one notification: the completion of an order of its own, or the
// audit of a trade of its own, so that its effect can be counted.
type note struct {
	requestID string
	path      string
	body      []byte
	orderID   string // a completion's
	tradeID   string // an audit's, batch "b-1"
}

// reply is what a partner received: resultStatus, and the body and
// signature a replay must repeat byte for byte.
type reply struct {
	status, signature, responseTime string
	body                            []byte
	took                            time.Duration
}

// hub is an in-process orderhub and a partner client of it.
type hub struct {
	url    string
	signer *signature.Signer
	http   *http.Client
}

func openHub(t *testing.T, redisURL string, minReplicas int, requestTimeout time.Duration) *hub {
	t.Helper()
	svc, err := orderhub.Open(orderhub.Config{
		RedisURL:         redisURL,
		RedisMinReplicas: minReplicas,
		ClientsFile:      testkit.ClientsFile(t, testkit.Entry(t, clientID, &testkit.Key(t, 1).PublicKey)),
		SigningKey:       testkit.Key(t, 0),
		RequestTimeout:   requestTimeout,
		Lease:            requestTimeout + time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(svc.Handler)
	t.Cleanup(srv.Close)
	return &hub{
		url:    srv.URL,
		signer: &signature.Signer{ClientID: clientID, Key: testkit.Key(t, 1)},
		http:   &http.Client{Timeout: requestTimeout + 5*time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
	}
}

// send posts n, signed, and reads the answer.
func (h *hub) send(ctx context.Context, n *note) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+n.path, bytes.NewReader(n.body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := h.signer.Edit(ctx, req); err != nil {
		return reply{}, err
	}
	start := time.Now()
	res, err := h.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return reply{}, err
	}
	var env struct {
		Result models.Result `json:"result"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &env) != nil {
		return reply{}, fmt.Errorf("%s: HTTP %d %s", n.requestID, res.StatusCode, b)
	}
	return reply{
		status: string(env.Result.ResultStatus), body: b, took: time.Since(start),
		signature: res.Header.Get("Signature"), responseTime: res.Header.Get("Response-Time"),
	}, nil
}

// notes makes n notifications named after prefix, half completions of
// orders created READY in st, half audits.
func notes(t *testing.T, st store.Store, prefix string, n int) []*note {
	t.Helper()
	out := make([]*note, n)
	for i := range out {
		out[i] = newNote(t, st, fmt.Sprintf("%s-%d", prefix, i), i%2 == 0)
	}
	return out
}

// newNote makes one notification named after id: a completion of an order
// it creates READY in st, or an audit (st unused).
func newNote(t *testing.T, st store.Store, id string, completion bool) *note {
	t.Helper()
	n := &note{requestID: "r-" + id}
	var err error
	if completion {
		n.path, n.orderID = pathCompletion, "o-"+id
		now := time.Now().UTC()
		if _, err := st.PutOrder(t.Context(), domain.Order{RequestOrderID: n.orderID, PosOrderID: "pos-" + id, Status: domain.Ready, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		n.body, err = json.Marshal(models.NotifyOrderCompletionRequest{RequestID: n.requestID, RequestOrderID: n.orderID})
	} else {
		n.path, n.tradeID = pathAudit, "t-"+id
		n.body, err = json.Marshal(models.NotifyDeliveryAuditResultRequest{
			RequestID: n.requestID, TradeID: n.tradeID, DeliveryBatchID: "b-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept,
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// effectOnce reports whether n's effect is in st exactly once: the order
// completed by one write since its creation (version 2), or the trade's
// one audit, from n.
func effectOnce(ctx context.Context, st store.Store, n *note) error {
	if n.orderID != "" {
		o, err := st.GetOrder(ctx, n.orderID)
		if err != nil {
			return fmt.Errorf("order %s: %w", n.orderID, err)
		}
		if o.Status != domain.Completed || o.Version != 2 {
			return fmt.Errorf("order %s is %s at version %d, want COMPLETED by one write (version 2)", n.orderID, o.Status, o.Version)
		}
		return nil
	}
	audits, err := st.ListAudits(ctx, n.tradeID)
	if err != nil {
		return fmt.Errorf("audits of %s: %w", n.tradeID, err)
	}
	if len(audits) != 1 || audits[0].RequestID != n.requestID {
		return fmt.Errorf("trade %s has audits %+v, want one, of %s", n.tradeID, audits, n.requestID)
	}
	return nil
}

// sameAnswer reports whether a replay repeats the first answer byte for
// byte: body, signature and the time it signs.
func sameAnswer(first, again reply) error {
	if again.status != first.status || !bytes.Equal(again.body, first.body) || again.signature != first.signature || again.responseTime != first.responseTime {
		return fmt.Errorf("replayed %s %s (Response-Time %s), first answered %s %s (Response-Time %s)", again.status, again.body, again.responseTime, first.status, first.body, first.responseTime)
	}
	return nil
}

// TestReplicaPaused: with ORDERHUB_REDIS_MIN_REPLICAS=1 and the replica
// frozen (SIGSTOP), every notification, and every retry of one, answers U
// within the request timeout: its effect and answer are on the master, but
// not known to be on the replica. Once the replica is back, each retry
// gets S, by one effect each, and its replays repeat that S byte for byte.
func TestReplicaPaused(t *testing.T) {
	const requestTimeout = time.Second
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	h := openHub(t, master.URL(), 1, requestTimeout)
	st := store.NewRedis(master.Client(t))
	all := notes(t, st, "paused", 8)

	// round sends every note at once and returns the replies.
	round := func(what string) []reply {
		t.Helper()
		replies := make([]reply, len(all))
		errs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, n := range all {
			wg.Go(func() { replies[i], errs[i] = h.send(t.Context(), n) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: %s: %v", what, all[i].requestID, err)
			}
		}
		return replies
	}

	replica.Pause()
	// The first sends commit on the master and fall short; the retries find
	// the unconfirmed records and fall short confirming them.
	for _, what := range []string{"first sends", "retries"} {
		for i, r := range round(what + ", the replica frozen") {
			if r.status != "U" || r.took > requestTimeout {
				t.Errorf("%s, the replica frozen: %s answered %s after %v; want U within %v", what, all[i].requestID, r.status, r.took, requestTimeout)
			}
		}
	}
	// Written on the master meanwhile, once: the retries replayed, never ran.
	for _, n := range all {
		if err := effectOnce(t.Context(), st, n); err != nil {
			t.Errorf("on the master, the replica frozen: %v", err)
		}
	}

	replica.Resume()
	first := round("retries, the replica back")
	for i, r := range first {
		if r.status != "S" {
			t.Errorf("retry, the replica back: %s answered %s %s; want S", all[i].requestID, r.status, r.body)
		}
	}
	for i, r := range round("replays") {
		if err := sameAnswer(first[i], r); err != nil {
			t.Errorf("%s: %v", all[i].requestID, err)
		}
	}
	onReplica := store.NewRedis(replica.Client(t))
	for _, n := range all {
		if err := effectOnce(t.Context(), st, n); err != nil {
			t.Error(err)
		}
		if err := effectOnce(t.Context(), onReplica, n); err != nil {
			t.Errorf("on the replica: %v", err)
		}
	}
}

// TestMinReplicasKillLoop (make soak): three masters and three replicas;
// under a steady stream of notifications a master is killed with SIGKILL,
// its replica promoted, the dead node started again (it comes back empty,
// as the new master's replica), and again with the next master. With
// ORDERHUB_REDIS_MIN_REPLICAS=1 every S ever answered must have its
// effect, once, and its replay must repeat it. The same loop at 0 gives
// the figures to compare: the U the guarantee cost (there an S lost to a
// failover is counted, not failed: that is the window 1 closes).
func TestMinReplicasKillLoop(t *testing.T) {
	if !soak() {
		t.Skip("the kill loop runs in make soak (ORDERHUB_SOAK=1)")
	}
	for _, n := range []int{1, 0} {
		t.Run(fmt.Sprintf("min_replicas=%d", n), func(t *testing.T) { killLoop(t, n) })
	}
}

func killLoop(t *testing.T, minReplicas int) {
	const (
		kills          = 6
		requestTimeout = 4 * time.Second
		every          = 20 * time.Millisecond // one notification, alternately a completion and an audit
		settle         = 2 * time.Minute       // how long one notification is retried
		orders         = 4000                  // created up front: a completion each
	)
	c := redistest.StartReplicatedCluster(t, "--cluster-node-timeout", "2000")
	h := openHub(t, c.URL(), minReplicas, requestTimeout)
	cc := c.Client(t)
	st := store.NewRedis(cc)
	var made []*note
	for i := range orders {
		made = append(made, newNote(t, st, fmt.Sprintf("kill-%d", 2*i), true), newNote(t, st, fmt.Sprintf("kill-%d", 2*i+1), false))
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	run := &killRun{first: map[string]reply{}}
	var wg sync.WaitGroup
	quit := make(chan struct{})
	generated := make(chan []*note, 1)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		var sent []*note
		defer func() { generated <- sent }()
		for _, n := range made {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			sent = append(sent, n)
			wg.Go(func() { run.notify(ctx, t, h, n, settle) })
		}
		t.Error("ran out of notifications before the kills were done: make more")
	}()

	steady := func() {
		t.Helper()
		before := run.count()
		if err := redistest.Poll(60*time.Second, func() error {
			if got := run.count() - before; got < 100 {
				return fmt.Errorf("%d S since the last kill, want 100 first", got)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range kills {
		steady()
		masters, err := c.Masters()
		if err != nil {
			t.Fatal(err)
		}
		victim := masters[i%len(masters)]
		killed := time.Now()
		if err := c.Kill(victim); err != nil {
			t.Fatal(err)
		}
		promoted, err := c.WaitPromotion(victim, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Revive(victim); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d: %s promoted after %.1f s, back as a replica after %.1f s; %d S so far, %d U", i+1, victim, promoted.Sub(killed).Seconds(), time.Since(killed).Seconds(), run.count(), run.uCount())
	}
	steady()
	close(quit)
	sent := <-generated
	wg.Wait()

	// Every S ever answered: its effect, once, and its replay the same S.
	var verified, replayed int
	var lost []string
	for _, n := range sent {
		first, ok := run.first[n.requestID]
		if !ok {
			continue // not settled: notify failed the test already
		}
		err := effectOnce(ctx, st, n)
		if err == nil {
			verified++
			var again reply
			if again, err = h.send(ctx, n); err == nil {
				err = sameAnswer(first, again)
			}
			if err == nil {
				replayed++
			}
		}
		if err != nil {
			lost = append(lost, fmt.Sprintf("%s: %v", n.requestID, err))
		}
	}
	t.Logf("min_replicas=%d, %d kills of a master under load: %d notifications sent, %d answered S; %d effects verified once, %d replays identical; %d U answered (%.2f per notification; %d notifications saw at least one), the longest a notification took to get its S: %.1f s",
		minReplicas, kills, len(sent), len(run.first), verified, replayed, run.uCount(), float64(run.uCount())/float64(len(sent)), run.withU, run.longest.Seconds())
	switch {
	case minReplicas == 0:
		for _, l := range lost {
			t.Logf("S lost to a failover (the window of min_replicas=0): %s", l)
		}
	case len(lost) > 0:
		for _, l := range lost {
			t.Errorf("answered S: %s", l)
		}
	}
	if len(run.first) != len(sent) {
		t.Errorf("of %d notifications %d answered S, want all", len(sent), len(run.first))
	}
}

// killRun tallies the kill loop's answers.
type killRun struct {
	mu      sync.Mutex
	first   map[string]reply // requestId → its first S
	us      int
	withU   int
	longest time.Duration
}

func (k *killRun) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.first)
}

func (k *killRun) uCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.us
}

// notify sends n until it is answered S, as a partner retries a U.
func (k *killRun) notify(ctx context.Context, t *testing.T, h *hub, n *note, settle time.Duration) {
	start := time.Now()
	backoff := 50 * time.Millisecond
	us := 0
	for {
		r, err := h.send(ctx, n)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			// The HTTP client's own bound: the request timeout passed.
			t.Errorf("%s: %v", n.requestID, err)
			return
		case r.status == "S":
			k.mu.Lock()
			k.first[n.requestID] = r
			k.us += us
			if us > 0 {
				k.withU++
			}
			k.longest = max(k.longest, time.Since(start))
			k.mu.Unlock()
			return
		case r.status != "U":
			t.Errorf("%s: answered %s %s, want S or U", n.requestID, r.status, r.body)
			return
		case time.Since(start) > settle:
			t.Errorf("%s: still U %v after its first send", n.requestID, settle)
			return
		}
		us++
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// TestDurabilityLatency (make soak) measures what each durability level
// costs a notification's commit: AOF with appendfsync everysec, AOF with
// always, and a replica's acknowledgement (ORDERHUB_REDIS_MIN_REPLICAS=1,
// AOF everysec on both). For each, p50 and p99 of the store's Commit alone
// (Begin before it, not timed) and of whole first-time notifications sent
// to an in-process orderhub, one at a time. The README's figures come from
// a run without -race.
func TestDurabilityLatency(t *testing.T) {
	if !soak() {
		t.Skip("a measurement, run by make soak (ORDERHUB_SOAK=1)")
	}
	const commits, notifications = 2000, 500
	everysec := []string{"--appendonly", "yes", "--appendfsync", "everysec"}
	for _, level := range []struct {
		name        string
		args        []string
		minReplicas int
	}{
		{"no AOF (reference)", nil, 0},
		{"AOF everysec", everysec, 0},
		{"AOF always", []string{"--appendonly", "yes", "--appendfsync", "always"}, 0},
		{"replica acknowledged (MIN_REPLICAS=1, AOF everysec)", everysec, 1},
	} {
		master := redistest.Start(t, level.args...)
		if level.minReplicas > 0 {
			redistest.StartReplica(t, master, level.args...)
		}
		rdb := redis.NewClient(&redis.Options{Addr: master.Addr()})
		st := store.NewRedis(rdb, store.MinReplicas(level.minReplicas))
		took := make([]time.Duration, 0, commits)
		for i := range commits {
			trade := fmt.Sprintf("lat-%d", i)
			k := store.Key{Op: opAudit, ClientID: clientID, RequestID: "r-" + trade, Scope: store.ScopeTrade, ScopeID: trade}
			b, err := st.Begin(t.Context(), k, "fp", time.Minute)
			if err != nil || b.State != store.Started {
				t.Fatalf("%s: Begin = %+v, %v", level.name, b, err)
			}
			a := domain.Audit{TradeID: trade, DeliveryBatchID: "b-1", Status: domain.AuditAccept, RequestID: k.RequestID}
			start := time.Now()
			if err := st.Commit(t.Context(), k, b.Token, []byte(`{"status":200}`), 72*time.Hour, store.RecordAuditEffect{Audit: a, Retention: 720 * time.Hour}); err != nil {
				t.Fatalf("%s: Commit: %v", level.name, err)
			}
			took = append(took, time.Since(start))
		}
		_ = st.Close()

		h := openHub(t, master.URL(), level.minReplicas, 10*time.Second)
		whole := make([]time.Duration, 0, notifications)
		for i := range notifications {
			n := newNote(t, nil, fmt.Sprintf("lat-http-%d", i), false)
			r, err := h.send(t.Context(), n)
			if err != nil || r.status != "S" {
				t.Fatalf("%s: %s answered %s, %v", level.name, n.requestID, r.status, err)
			}
			whole = append(whole, r.took)
		}
		t.Logf("%-52s commit p50 %6.3f ms p99 %6.3f ms; notification p50 %6.3f ms p99 %6.3f ms",
			level.name, ms(percentile(took, 50)), ms(percentile(took, 99)), ms(percentile(whole, 50)), ms(percentile(whole, 99)))
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
