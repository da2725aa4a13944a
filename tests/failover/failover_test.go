package failover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

const (
	clientID  = "isv-1"
	opAudit   = "notifyDeliveryAuditResult"
	pathAudit = "/v1/delivery/notifyDeliveryAuditResult"

	// A request waiting on a frozen master answers U when this ends; the
	// lease, just above it, is how long a request caught by the break
	// mid-way keeps its requestId in progress on the promoted replica.
	requestTimeout = 4 * time.Second
	lease          = 5 * time.Second

	// every: a new notification on the victim's slots and one on the
	// others' (open loop, as partners send: a request hanging on the frozen
	// master holds up no other).
	every = 100 * time.Millisecond
	// recoverWithin: go test's bound on the first S after the promotion.
	recoverWithin = 15 * time.Second
	// settleWithin bounds how long one notification is retried: past the
	// promotion, the lease of a request caught mid-way, and recovery.
	settleWithin = 45 * time.Second
	// probeEvery paces /readyz; each probe also reloads the slot map, so a
	// faster one would hide the reload interval under test.
	probeEvery = time.Second
)

// soak: ORDERHUB_SOAK=1 asserts the tight figures.
func soak() bool { return os.Getenv("ORDERHUB_SOAK") == "1" }

func TestMasterKilled(t *testing.T) {
	failover(t, "kill -9", (*redistest.Cluster).Kill)
}

func TestMasterFrozen(t *testing.T) {
	failover(t, "SIGSTOP", (*redistest.Cluster).Pause)
}

// failover breaks the master of slot 0 under load and measures when its
// slots answer S again.
func failover(t *testing.T, how string, breakIt func(*redistest.Cluster, string) error) {
	c := redistest.StartReplicatedCluster(t, "--cluster-node-timeout", "2000")
	owners, err := c.SlotMasters()
	if err != nil {
		t.Fatal(err)
	}
	victim := owners[0]

	svc, err := orderhub.Open(orderhub.Config{
		RedisURL:       c.URL(), // cluster_reload: its default
		ClientsFile:    testkit.ClientsFile(t, testkit.Entry(t, clientID, &testkit.Key(t, 1).PublicKey)),
		SigningKey:     testkit.Key(t, 0),
		RequestTimeout: requestTimeout,
		Lease:          lease,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(svc.Handler)
	t.Cleanup(srv.Close)

	l := &load{
		t: t, url: srv.URL, owners: owners, victim: victim,
		signer: &signature.Signer{ClientID: clientID, Key: testkit.Key(t, 1)},
		http:   &http.Client{Timeout: settleWithin, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	stop, stopped := l.start()
	p := startProbes(l.ctx, srv.URL)
	// On an early return: no retrying past the test, nothing in flight.
	t.Cleanup(func() {
		l.cancel()
		stop()
		<-stopped
		p.wait()
	})

	// Traffic flows on both sides before the break.
	if err := redistest.Poll(15*time.Second, func() error {
		if v, o := l.count(true, "S"), l.count(false, "S"); v < 5 || o < 5 {
			return fmt.Errorf("%d S on the victim's slots and %d on the others' before the break", v, o)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	broken := time.Now()
	if err := breakIt(c, victim); err != nil {
		t.Fatal(err)
	}
	// Before any promotion (it takes cluster-node-timeout at least): the
	// outage shows, and the instance stays ready.
	var wg sync.WaitGroup
	wg.Go(func() {
		status, body, err := get(l.ctx, srv.URL+"/readyz")
		if err != nil || status != http.StatusOK || !strings.Contains(body, victim) {
			t.Errorf("/readyz with %s down: %d %q %v; want 200 naming it", victim, status, body, err)
		}
	})
	wg.Go(func() {
		_, body, err := get(l.ctx, srv.URL+"/metrics")
		if err != nil || !strings.Contains(body, "\norderhub_store_nodes_unreachable 1\n") || !strings.Contains(body, "\norderhub_store_nodes 3\n") {
			t.Errorf("/metrics with %s down (%v): want orderhub_store_nodes 3 and orderhub_store_nodes_unreachable 1 in\n%s", victim, err, grep(body, "orderhub_store_nodes"))
		}
	})
	wg.Wait()

	promoted, err := c.WaitPromotion(victim, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := redistest.Poll(time.Until(promoted.Add(recoverWithin)), func() error {
		if l.firstS(promoted).IsZero() {
			return fmt.Errorf("no S on the slots of %s within %v of the promotion", victim, recoverWithin)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The load goes on a while, so that a late U would show; then every
	// notification is retried until S.
	window := time.NewTimer(time.Until(l.firstS(promoted).Add(time.Second)))
	<-window.C
	stop()
	<-stopped
	p.wait()

	f := l.figures(broken, promoted)
	t.Logf("%s of master %s: promoted %.2f s after; first S %.2f s after the promotion; last U on a request sent %.2f s after it (answered %.2f s after it); %d U on its slots, of %d notifications sent since the break (%d caught mid-way); %d U on the others' slots (CLUSTERDOWN), the last sent %.2f s after the promotion",
		how, victim, secs(promoted.Sub(broken)), secs(f.firstS), secs(f.lastUSent), secs(f.lastUGot), f.victimU, f.fresh, f.caught, f.otherU, secs(f.lastOtherUSent))
	if f.lastOtherUSent > recoverWithin {
		t.Errorf("U on the other masters' slots %.2f s after the promotion, want none past %v", secs(f.lastOtherUSent), recoverWithin)
	}
	for _, pr := range p.failed() {
		t.Errorf("/readyz at %.2f s after the break: %s (want 200: the other masters serve)", secs(pr.at.Sub(broken)), pr)
	}
	if soak() {
		if f.firstS > 2*time.Second {
			t.Errorf("first S %.2f s after the promotion, want ≤ 2 s", secs(f.firstS))
		}
		if f.lastUSent > 3*time.Second || f.lastOtherUSent > 3*time.Second {
			t.Errorf("U on a request sent %.2f s (victim's slots) and %.2f s (others') after the promotion, want none past 3 s", secs(f.lastUSent), secs(f.lastOtherUSent))
		}
	}
}

func secs(d time.Duration) float64 { return d.Seconds() }

// load sends notifyDeliveryAuditResult notifications, each with a fresh
// requestId and a tradeId on the victim's slots or on the others', and
// retries each U with the same requestId until S.
type load struct {
	t      *testing.T
	url    string
	owners []string // slot → master before the break
	victim string
	signer *signature.Signer
	http   *http.Client

	ctx    context.Context // cancelled: stop retrying (the test ended early)
	cancel context.CancelFunc

	names atomic.Int64
	wg    sync.WaitGroup

	mu    sync.Mutex
	tries []try
}

// try is one send of a notification.
type try struct {
	victim         bool
	requestID      string
	first          time.Time // the notification's first send
	sent, answered time.Time
	status         string // S or U
}

// start sends a pair of notifications every `every` until stop is called;
// stopped is closed once every notification sent is final.
func (l *load) start() (stop func(), stopped <-chan struct{}) {
	quit, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			l.wg.Add(2)
			go l.notify(true)
			go l.notify(false)
			select {
			case <-quit:
				l.wg.Wait()
				return
			case <-tick.C:
			}
		}
	}()
	return func() { once.Do(func() { close(quit) }) }, done
}

// ids are a fresh requestId and tradeId whose keys (the claim; the audits
// and the record) live on the victim's slots, or all elsewhere.
func (l *load) ids(victim bool) (requestID, tradeID string) {
	on := func(key string) bool { return (l.owners[redistest.Slot(key)] == l.victim) == victim }
	for requestID == "" {
		id := fmt.Sprintf("r-%d", l.names.Add(1))
		if on(store.ClaimKey(store.Key{Op: opAudit, ClientID: clientID, RequestID: id})) {
			requestID = id
		}
	}
	for tradeID == "" {
		id := fmt.Sprintf("t-%d", l.names.Add(1))
		if on(store.AuditsKey(id)) {
			tradeID = id
		}
	}
	return requestID, tradeID
}

// notify sends one notification until it is answered S.
func (l *load) notify(victim bool) {
	defer l.wg.Done()
	requestID, tradeID := l.ids(victim)
	body, err := json.Marshal(models.NotifyDeliveryAuditResultRequest{
		RequestID: requestID, TradeID: tradeID, DeliveryBatchID: "b-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept,
	})
	if err != nil {
		l.t.Error(err)
		return
	}
	first := time.Now()
	backoff := 50 * time.Millisecond
	for {
		sent := time.Now()
		status, err := l.send(body)
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			l.t.Errorf("%s: %v", requestID, err)
			return
		}
		l.mu.Lock()
		l.tries = append(l.tries, try{victim: victim, requestID: requestID, first: first, sent: sent, answered: time.Now(), status: status})
		l.mu.Unlock()
		switch {
		case status == "S":
			return
		case status != "U":
			l.t.Errorf("%s: answered %q, want S or U", requestID, status)
			return
		case time.Since(first) > settleWithin:
			l.t.Errorf("%s: still U %v after its first send", requestID, settleWithin)
			return
		}
		// A partner's back-off between retries.
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// send posts a signed notification and returns its resultStatus.
func (l *load) send(body []byte) (string, error) {
	req, err := http.NewRequestWithContext(l.ctx, http.MethodPost, l.url+pathAudit, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := l.signer.Edit(l.ctx, req); err != nil {
		return "", err
	}
	res, err := l.http.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	var env struct {
		Result models.Result `json:"result"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &env) != nil {
		return "", fmt.Errorf("HTTP %d %s", res.StatusCode, b)
	}
	return string(env.Result.ResultStatus), nil
}

func (l *load) count(victim bool, status string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, tr := range l.tries {
		if tr.victim == victim && tr.status == status {
			n++
		}
	}
	return n
}

// firstS is when the first S on the victim's slots after t was answered,
// zero if none yet.
func (l *load) firstS(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, tr := range l.tries {
		if tr.victim && tr.status == "S" && tr.answered.After(t) && (first.IsZero() || tr.answered.Before(first)) {
			first = tr.answered
		}
	}
	return first
}

// figures of one failover, times after the promotion.
type figures struct {
	firstS time.Duration // the first S on the victim's slots
	// The last U on the victim's slots of a notification first sent after
	// the break: when it was sent (the client still routed to the dead
	// master), and when answered (a request waiting on a frozen master
	// gets its U when the request timeout ends).
	lastUSent, lastUGot time.Duration
	// The last U on the other masters' slots, when sent: with Redis's
	// cluster-require-full-coverage (default yes) every node answers
	// CLUSTERDOWN from the moment the master is marked failed until its
	// replica takes over.
	lastOtherUSent  time.Duration
	victimU, otherU int // U answers
	fresh           int // victim notifications first sent after the break
	// caught: victim notifications sent before the break and answered U
	// after it: their retries may find the requestId in progress on the
	// promoted replica until the lease ends, as after any crash mid-way.
	caught int
}

func (l *load) figures(broken, promoted time.Time) figures {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := figures{firstS: -1, lastUSent: -1, lastUGot: -1, lastOtherUSent: -1}
	fresh, caught := map[string]bool{}, map[string]bool{}
	for _, tr := range l.tries {
		switch {
		case !tr.victim:
			if tr.status == "U" {
				f.otherU++
				f.lastOtherUSent = max(f.lastOtherUSent, tr.sent.Sub(promoted))
			}
			continue
		case tr.status == "S" && tr.answered.After(promoted):
			if f.firstS < 0 || tr.answered.Sub(promoted) < f.firstS {
				f.firstS = tr.answered.Sub(promoted)
			}
		case tr.status == "U":
			f.victimU++
		}
		if tr.first.Before(broken) {
			if tr.status == "U" {
				caught[tr.requestID] = true
			}
			continue
		}
		fresh[tr.requestID] = true
		if tr.status == "U" {
			f.lastUSent = max(f.lastUSent, tr.sent.Sub(promoted))
			f.lastUGot = max(f.lastUGot, tr.answered.Sub(promoted))
		}
	}
	f.fresh, f.caught = len(fresh), len(caught)
	return f
}

// probes asks /readyz every probeEvery until its context ends.
type probes struct {
	mu     sync.Mutex
	all    []probe
	done   chan struct{}
	cancel context.CancelFunc
}

type probe struct {
	at     time.Time
	status int
	body   string
	err    error
}

func (p probe) String() string {
	if p.err != nil {
		return p.err.Error()
	}
	return fmt.Sprintf("%d %q", p.status, p.body)
}

func startProbes(ctx context.Context, baseURL string) *probes {
	ctx, cancel := context.WithCancel(ctx)
	p := &probes{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			at := time.Now()
			status, body, err := get(ctx, baseURL+"/readyz")
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.all = append(p.all, probe{at, status, body, err})
			p.mu.Unlock()
		}
	}()
	return p
}

// wait stops the probes and waits for the last one.
func (p *probes) wait() {
	p.cancel()
	<-p.done
}

func (p *probes) failed() []probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	var bad []probe
	for _, pr := range p.all {
		if pr.err != nil || pr.status != http.StatusOK {
			bad = append(bad, pr)
		}
	}
	return bad
}

func get(ctx context.Context, u string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// grep keeps the lines of text that contain s.
func grep(text, s string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			b.WriteString(line)
		}
	}
	return b.String()
}
