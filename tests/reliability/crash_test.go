package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/store"
)

// victim is the process a crash test kills with SIGKILL mid-stream.
type victim struct {
	name string
	// arm returns the kill of the victim as it runs now; the kill switch
	// calls it from the goroutine that counted the acknowledgement the kill
	// waits for, while the other senders' requests are in flight.
	arm func(r *rig) (kill func())
	// revive brings the service back, on the test goroutine.
	revive func(t *testing.T, r *rig)
}

// TestCrashSafety: "with Redis appendonly yes, kill -9 orderhub during a
// stream of unique notifications, restart it, replay every request the
// client did not see acknowledged: every notification ends applied exactly
// once, and every one that was answered S before the kill is still there.
// Then the same with kill -9 of redis-server (appendfsync always)."
func TestCrashSafety(t *testing.T) {
	sc := scaleOf(t)
	t.Run("orderhub", func(t *testing.T) {
		t.Parallel()
		crashTest(t, sc, victim{
			name: "orderhub",
			arm:  func(r *rig) func() { return r.hub.kill },
			revive: func(t *testing.T, r *rig) {
				t.Helper()
				r.startHub()
			},
		})
	})
	t.Run("redis-server", func(t *testing.T) {
		t.Parallel()
		crashTest(t, sc, victim{
			name: "redis-server",
			arm:  func(r *rig) func() { return r.redis.Stop },
			revive: func(t *testing.T, r *rig) {
				t.Helper()
				r.redis.Restart() // same port and directory: it reads its AOF back
				if err := r.waitReady(t.Context(), 15*time.Second); err != nil {
					t.Fatalf("orderhub not ready after redis-server came back: %v", err)
				}
				if !r.hub.alive() {
					t.Fatal("orderhub exited while redis-server was down")
				}
			},
		})
	})
}

// outcome is what the stream saw of one notification.
type outcome int

const (
	unsent     outcome = iota // not sent before the kill
	acked                     // answered S before the kill
	inDoubt                   // sent, but no S came back (U or a broken connection)
	unexpected                // an answer no retry explains (F, no envelope)
)

// crashTally are the figures of a crash test.
type crashTally struct {
	cycles, notifications, sends                     int
	acked, inDoubt, appliedUnanswered, unsent        int
	replayed, replaySends, effects, dups, lost       int
	resends, resendMismatches, strays, orderRewrites int
}

func (c *crashTally) add(o crashTally) {
	c.cycles += o.cycles
	c.notifications += o.notifications
	c.sends += o.sends
	c.acked += o.acked
	c.inDoubt += o.inDoubt
	c.appliedUnanswered += o.appliedUnanswered
	c.unsent += o.unsent
	c.replayed += o.replayed
	c.replaySends += o.replaySends
	c.effects += o.effects
	c.dups += o.dups
	c.lost += o.lost
	c.resends += o.resends
	c.resendMismatches += o.resendMismatches
	c.strays += o.strays
	c.orderRewrites += o.orderRewrites
}

// String is the fixed format the figures are quoted in.
func (c crashTally) String() string {
	return fmt.Sprintf("notifications=%d requests-sent=%d acked-before-kill=%d in-doubt=%d (applied-but-unanswered=%d) unsent=%d replayed=%d (replay-requests=%d) effects=%d/%d duplicates=%d lost=%d resent-after-recovery=%d (not-byte-identical=%d)",
		c.notifications, c.sends+c.replaySends+c.resends, c.acked, c.inDoubt, c.appliedUnanswered, c.unsent,
		c.replayed, c.replaySends, c.effects, c.notifications, c.dups, c.lost, c.resends, c.resendMismatches)
}

func crashTest(t *testing.T, sc scale, v victim) {
	if sc.crashKillAt >= sc.crashNotes {
		t.Fatalf("test bug: the kill after %d acknowledgements never comes in %d notifications", sc.crashKillAt, sc.crashNotes)
	}
	start := time.Now()
	// A short lease: a request cut off by the kill holds its requestId in
	// Redis until the lease ends, and the replay waits for that.
	r := newRig(t, rigConfig{redisArgs: durableRedis, requestTimeout: time.Second, lease: 2 * time.Second})
	st := store.NewRedis(r.redis.Client(t))
	ctx := t.Context()

	var all []*note
	var total crashTally
	for cycle := 1; cycle <= sc.crashCycles; cycle++ {
		notes := r.crashNotes(ctx, v.name, cycle, sc.crashNotes)
		if err := markCreated(ctx, st, notes); err != nil {
			t.Fatal(err)
		}
		all = append(all, notes...)
		tally := r.crashCycle(t, sc, v, notes, all, st)
		t.Logf("crash[%s] cycle %d/%d: %v", v.name, cycle, sc.crashCycles, tally)
		total.add(tally)
		if t.Failed() {
			break
		}
	}
	t.Logf("crash[%s] total: kills=%d %v runtime=%s", v.name, total.cycles, total, time.Since(start).Round(time.Millisecond))
}

// crashNotes creates the orders of a cycle's completions through the
// operator API and signs the cycle's notifications: half completions of
// orders of their own, half audits of batches of their own, spread over a
// few trades that every cycle adds to.
func (r *rig) crashNotes(ctx context.Context, prefix string, cycle, n int) []*note {
	r.t.Helper()
	notes := make([]*note, n)
	for i := range notes {
		rid := fmt.Sprintf("%s-c%d-r%d", prefix, cycle, i)
		if i%2 == 0 {
			order := fmt.Sprintf("%s-c%d-order%d", prefix, cycle, i)
			if err := r.partner.putOrder(ctx, r.hub.url, order, models.OrderStatusAccepted); err != nil {
				r.t.Fatal(err)
			}
			notes[i] = r.partner.completion(rid, order)
		} else {
			notes[i] = r.partner.audit(rid, fmt.Sprintf("%s-trade%d", prefix, i%5), fmt.Sprintf("c%d-b%d", cycle, i))
		}
	}
	return notes
}

// crashCycle streams notes, kills the victim on the crashKillAt-th
// acknowledgement, revives it, replays what was not acknowledged and checks
// every notification of the run so far (all).
func (r *rig) crashCycle(t *testing.T, sc scale, v victim, notes, all []*note, st store.Store) crashTally {
	t.Helper()
	c := &cycleRun{t: t, r: r, sc: sc, notes: notes, outs: make([]outcome, len(notes)), first: make([]answer, len(notes))}
	c.tally = crashTally{cycles: 1, notifications: len(notes)}
	c.streamUntilKilled(v)
	pending := c.unacknowledged()
	v.revive(t, r)
	c.acknowledgedSurvived()
	c.replayUntilFinal(pending)
	if t.Failed() {
		return c.tally
	}
	replayed, err := r.partner.stateOf(t.Context(), r.hub.url, notes)
	if err != nil {
		t.Fatalf("reading the state after the replay: %v", err)
	}
	c.resendsReplayFirstAnswers()
	c.appliedExactlyOnce(all, replayed, st)
	return c.tally
}

// cycleRun is one crash cycle under way: its notifications, what the
// stream saw of each, and the first final answer of each.
type cycleRun struct {
	t      *testing.T
	r      *rig
	sc     scale
	notes  []*note
	outs   []outcome
	first  []answer
	before state // what survived the kill, before any replay
	tally  crashTally
}

// inParallel calls f with each of items from sc.crashSenders goroutines.
func (c *cycleRun) inParallel(items []int, f func(i int)) {
	queue := make(chan int, len(items))
	for _, i := range items {
		queue <- i
	}
	close(queue)
	var wg sync.WaitGroup
	for range c.sc.crashSenders {
		wg.Go(func() {
			for i := range queue {
				f(i)
			}
		})
	}
	wg.Wait()
}

// streamUntilKilled streams the notes through the kill switch, which kills
// the victim on the crashKillAt-th S answer and drops that answer; the
// notes not sent by then go out after the recovery.
func (c *cycleRun) streamUntilKilled(v victim) {
	t := c.t
	ks := newKillSwitch(t, c.r.hub.url, int64(c.sc.crashKillAt), v.arm(c.r))
	var sends atomic.Int64
	c.inParallel(indices(len(c.notes)), func(i int) {
		if ks.killed.Load() {
			return // unsent
		}
		sends.Add(1)
		a, err := c.r.partner.send(t.Context(), ks.url, c.notes[i])
		switch {
		case err != nil:
			c.outs[i] = inDoubt
		case a.is(models.ResultStatusSuccess):
			c.outs[i], c.first[i] = acked, a
		case a.unknown():
			c.outs[i] = inDoubt
		default:
			c.outs[i] = unexpected
			t.Errorf("%v before the kill: %v", c.notes[i], a)
		}
	})
	c.tally.sends = int(sends.Load())
	if !ks.killed.Load() {
		t.Fatalf("only %d S answers passed, the kill waits for %d", ks.acks.Load(), c.sc.crashKillAt)
	}
}

// indices are 0 … n-1.
func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// unacknowledged counts the outcomes and returns every notification
// without an acknowledgement.
func (c *cycleRun) unacknowledged() (pending []int) {
	for i, o := range c.outs {
		switch o {
		case acked:
			c.tally.acked++
		case inDoubt:
			c.tally.inDoubt++
			pending = append(pending, i)
		case unsent:
			c.tally.unsent++
			pending = append(pending, i)
		}
	}
	return pending
}

// acknowledgedSurvived reads what survived the kill, before anything is
// replayed: every acknowledged effect, and at least the one whose answer
// the kill switch dropped.
func (c *cycleRun) acknowledgedSurvived() {
	t := c.t
	var err error
	c.before, err = c.r.partner.stateOf(t.Context(), c.r.hub.url, c.notes)
	if err != nil {
		t.Fatalf("reading the state after the recovery: %v", err)
	}
	for i, n := range c.notes {
		_, applied := c.before.applied[n.requestID]
		switch {
		case c.outs[i] == acked && !applied:
			c.tally.lost++
			t.Errorf("lost: %v was answered S before the kill, and its effect is gone", n)
		case c.outs[i] == inDoubt && applied:
			c.tally.appliedUnanswered++
		}
	}
	// At least the answer the kill switch dropped: the case the test is for.
	if c.tally.appliedUnanswered == 0 {
		t.Errorf("no notification was applied without its answer reaching the sender; the kill switch dropped one")
	}
}

// replayUntilFinal replays every notification not acknowledged, as it was
// signed, until it gets a final answer, S; a request cut off by the kill
// keeps its requestId until its lease ends, answered U meanwhile.
func (c *cycleRun) replayUntilFinal(pending []int) {
	t, r := c.t, c.r
	c.tally.replayed = len(pending)
	var replaySends atomic.Int64
	c.inParallel(pending, func(i int) {
		a, n, err := r.partner.untilFinal(t.Context(), r.hub.url, c.notes[i], r.cfg.lease+15*time.Second, 50*time.Millisecond)
		replaySends.Add(int64(n))
		if err != nil {
			t.Errorf("replay: %v", err)
			return
		}
		if !a.is(models.ResultStatusSuccess) {
			t.Errorf("replay of %v: %v, want S", c.notes[i], a)
		}
		c.first[i] = a
	})
	c.tally.replaySends = int(replaySends.Load())
}

// resendsReplayFirstAnswers sends every notification once more: each must
// get its first final answer back byte for byte, the stored one, not run
// again.
func (c *cycleRun) resendsReplayFirstAnswers() {
	t := c.t
	for i, n := range c.notes {
		a, err := c.r.partner.send(t.Context(), c.r.hub.url, n)
		c.tally.resends++
		if err != nil {
			t.Errorf("resending %v: %v", n, err)
			continue
		}
		if d := sameBytes(c.first[i], a); d != "" {
			c.tally.resendMismatches++
			t.Errorf("resending %v (%v before the kill) did not replay its first answer: %s", n, c.outs[i], d)
		}
	}
}

// appliedExactlyOnce: every effect of the cycle is there, written by one
// execution (the one before the kill, or else the replay), every effect of
// the earlier cycles too, and no order was written twice.
func (c *cycleRun) appliedExactlyOnce(all []*note, replayed state, st store.Store) {
	t := c.t
	final, err := c.r.partner.stateOf(t.Context(), c.r.hub.url, all)
	if err != nil {
		t.Fatalf("reading the final state: %v", err)
	}
	c.tally.strays = len(final.strays)
	for _, s := range final.strays {
		t.Errorf("duplicate: %s", s)
	}
	for _, n := range c.notes {
		at, ok := final.applied[n.requestID]
		if !ok {
			t.Errorf("%v has no effect after its replay", n)
			continue
		}
		c.tally.effects++
		// The effect's timestamp is written by the execution that applied
		// it: any later execution would have changed it.
		if was, ok := c.before.applied[n.requestID]; ok && !was.Equal(at) {
			c.tally.dups++
			t.Errorf("duplicate: %v was applied before the kill at %s and again at %s", n, was, at)
		} else if was := replayed.applied[n.requestID]; !was.Equal(at) {
			c.tally.dups++
			t.Errorf("duplicate: %v was applied at %s and again, after its replay, at %s", n, was, at)
		}
	}
	for _, n := range all {
		if _, ok := final.applied[n.requestID]; !ok {
			t.Errorf("%v of an earlier cycle has lost its effect", n)
		}
	}
	c.tally.orderRewrites = checkWrittenOnce(t, st, all, "")
	c.tally.dups += c.tally.strays + c.tally.orderRewrites
}

// killSwitch is a reverse proxy in front of orderhub during the stream. It
// counts the S answers passing through and on the killAt-th one kills the
// victim and drops that answer: its sender sees a broken connection for a
// notification that is certainly applied (orderhub answers S only after
// Redis acknowledged the write), an acknowledgement lost in the crash. The
// requests in flight at that moment meet the kill wherever they are.
type killSwitch struct {
	url    string
	killAt int64
	kill   func()
	acks   atomic.Int64
	killed atomic.Bool
}

func newKillSwitch(t *testing.T, target string, killAt int64, kill func()) *killSwitch {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ks := &killSwitch{killAt: killAt, kill: kill}
	base := &http.Transport{MaxIdleConnsPerHost: 512}
	proxy := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(to) },
		Transport:      base,
		ModifyResponse: ks.inspect,
		// Whatever went wrong (the victim gone, the dropped answer), the
		// sender sees the connection break, as with a crashed server.
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) },
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	t.Cleanup(base.CloseIdleConnections)
	ks.url = srv.URL
	return ks
}

var errDropped = errors.New("answer dropped by the kill switch")

func (ks *killSwitch) inspect(res *http.Response) error {
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	var env struct {
		Result models.Result `json:"result"`
	}
	if json.Unmarshal(body, &env) != nil || env.Result.ResultStatus != models.ResultStatusSuccess {
		return nil
	}
	if ks.acks.Add(1) == ks.killAt {
		ks.killed.Store(true)
		ks.kill()
		return errDropped
	}
	return nil
}

// TestCrashMidCommit kills the victim at the one moment a stream only hits
// by chance: a notification has claimed its requestId and its commit (the
// effect and the completed record, one script) is on its way to Redis. The
// gate holds that commit, the victim is killed, and the commit is dropped
// with the connections: it never ran. Nothing of the notification may be
// left then (an effect without its record would be run again by the
// replay); its replay, once the claim's lease is over, applies it once.
func TestCrashMidCommit(t *testing.T) {
	for _, v := range []midCommitVictim{
		{"orderhub", func(r *rig) { r.hub.kill() }, func(t *testing.T, r *rig) { r.startHub() }},
		{"redis-server", func(r *rig) { r.redis.Stop() }, func(t *testing.T, r *rig) {
			r.redis.Restart()
			if err := r.waitReady(t.Context(), 15*time.Second); err != nil {
				t.Fatalf("orderhub not ready after redis-server came back: %v", err)
			}
		}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigConfig{redisArgs: durableRedis, requestTimeout: time.Second, lease: 2 * time.Second, viaGate: true})
			st := store.NewRedis(r.redis.Client(t))
			notes := midCommitNotes(t, r, st)
			for _, n := range notes {
				killedMidCommit(t, r, v, n)
				before := nothingLeftOf(t, r, n)
				sends := replayedOnce(t, r, n, before)
				t.Logf("crash[%s mid-commit] %v: commit held, victim killed, commit dropped; final answer after %d sends", v.name, n, sends)
			}
			checkWrittenOnce(t, st, notes, "")
		})
	}
}

// midCommitVictim is what TestCrashMidCommit kills, and how it comes back.
type midCommitVictim struct {
	name   string
	kill   func(r *rig)
	revive func(t *testing.T, r *rig)
}

// midCommitNotes signs a completion of a new order and an audit, and sends
// a warm-up notification so that Redis caches the scripts before the gate
// is armed.
func midCommitNotes(t *testing.T, r *rig, st store.Store) []*note {
	t.Helper()
	ctx := t.Context()
	order := "midcommit-order"
	if err := r.partner.putOrder(ctx, r.hub.url, order, models.OrderStatusReady); err != nil {
		t.Fatal(err)
	}
	notes := []*note{
		r.partner.completion("midcommit-completion", order),
		r.partner.audit("midcommit-audit", "midcommit-trade", "b1"),
	}
	if err := markCreated(ctx, st, notes); err != nil {
		t.Fatal(err)
	}
	if a, err := r.partner.send(ctx, r.hub.url, r.partner.audit("midcommit-warmup", "midcommit-warmup", "b")); err != nil || !a.is(models.ResultStatusSuccess) {
		t.Fatalf("before the kill: %v %v", a, err)
	}
	return notes
}

// killedMidCommit sends n, kills the victim while the gate holds n's
// commit, drops the commit with the connections, and revives the victim.
// n must not have been answered S.
func killedMidCommit(t *testing.T, r *rig, v midCommitVictim, n *note) {
	t.Helper()
	tripped := r.gate.commitTrigger(r.partner.clientID, n)
	type result struct {
		a   answer
		err error
	}
	sent := make(chan result, 1)
	go func() {
		a, err := r.partner.send(t.Context(), r.hub.url, n)
		sent <- result{a, err}
	}()
	select {
	case <-tripped:
	case res := <-sent:
		t.Fatalf("%v answered %v %v; the gate never saw its commit: has the store's key layout changed?", n, res.a, res.err)
	}
	v.kill(r)
	r.gate.cut()
	if res := <-sent; res.err == nil && res.a.is(models.ResultStatusSuccess) {
		t.Fatalf("%v answered S though its commit never reached Redis: %v", n, res.a)
	}
	v.revive(t, r)
}

// nothingLeftOf: n's commit never ran, so its effect is not there either;
// effect and record are written together. It returns the state read.
func nothingLeftOf(t *testing.T, r *rig, n *note) state {
	t.Helper()
	before, err := r.partner.stateOf(t.Context(), r.hub.url, []*note{n})
	if err != nil {
		t.Fatal(err)
	}
	if at, ok := before.applied[n.requestID]; ok {
		t.Errorf("%v: its effect (at %s) is there though its commit never ran: effect and record were not written together", n, at)
	}
	return before
}

// replayedOnce replays n, once the claim's lease is over, until it is
// final: S, replayed byte for byte on a resend, applied once. It returns
// the sends the final answer took.
func replayedOnce(t *testing.T, r *rig, n *note, before state) (sends int) {
	t.Helper()
	ctx := t.Context()
	first, sends, err := r.partner.untilFinal(ctx, r.hub.url, n, r.cfg.lease+15*time.Second, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !first.is(models.ResultStatusSuccess) {
		t.Errorf("%v replayed: %v, want S", n, first)
	}
	again, err := r.partner.send(ctx, r.hub.url, n)
	if err != nil || sameBytes(first, again) != "" {
		t.Errorf("resending %v: %v %v, want its answer replayed: %s", n, again, err, sameBytes(first, again))
	}
	after, err := r.partner.stateOf(ctx, r.hub.url, []*note{n})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range after.strays {
		t.Errorf("duplicate: %s", s)
	}
	at, ok := after.applied[n.requestID]
	switch was, applied := before.applied[n.requestID]; {
	case !ok:
		t.Errorf("%v has no effect after its replay", n)
	case applied && !was.Equal(at):
		t.Errorf("duplicate: %v was applied at %s before the replay and again at %s", n, was, at)
	}
	return sends
}
