package reliability

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/store"
)

// faultTally are the figures of the fault test.
type faultTally struct {
	faults, duringFault, afterRecovery, retriesAfterRecovery int
	effects, dups                                            int
	slowest, slowestReadyz, longestRecovery                  time.Duration
}

func (f faultTally) String() string {
	return fmt.Sprintf("faults=%d sent-during-fault=%d (slowest answer %s; /readyz slowest %s) sent-after-recovery=%d (U retries %d; longest recovery %s) effects=%d/%d duplicates=%d",
		f.faults, f.duringFault, f.slowest.Round(time.Millisecond), f.slowestReadyz.Round(time.Millisecond),
		f.afterRecovery, f.retriesAfterRecovery, f.longestRecovery.Round(time.Millisecond), f.effects, f.duringFault, f.dups)
}

// faultDeadline is orderhub's request deadline in TestRedisFaults, and
// faultBound how soon every answer during a fault must come: the deadline
// plus a generous margin for a loaded machine, yet below go-redis's own 3 s
// read timeout, so that a Redis client ignoring the deadline fails it.
const (
	faultDeadline = time.Second
	faultBound    = faultDeadline + 1900*time.Millisecond
)

// TestRedisFaults: "stop the test's redis-server mid-run → U answers within
// the deadline; start it again → S answers, no restart of orderhub." Redis
// fails in two ways: stopped (SIGKILL: connections refused) and hung
// (SIGSTOP: the kernel accepts connections, nothing answers). During a
// fault every notification must be answered U/UNKNOWN_EXCEPTION, HTTP 200,
// signed, within the request deadline plus a margin; /readyz answers 503
// and /healthz 200. After it, the same requestIds get S and take effect
// exactly once, from the same orderhub process.
func TestRedisFaults(t *testing.T) {
	sc := scaleOf(t)
	start := time.Now()
	r := newRig(t, rigConfig{redisArgs: durableRedis, requestTimeout: faultDeadline, lease: 3 * time.Second})
	fr := &faultRun{t: t, r: r, st: store.NewRedis(r.redis.Client(t)), hub: r.hub}
	faults := []redisFault{
		{"stopped", r.redis.Stop, r.redis.Restart},
		{"hung", r.redis.Pause, r.redis.Resume},
	}
	for round := 1; round <= sc.faultRounds && !t.Failed(); round++ {
		for _, f := range faults {
			fr.cycle(f, round, sc.faultRequests)
		}
	}
	t.Logf("faults: %v runtime=%s", fr.tally, time.Since(start).Round(time.Millisecond))
}

// redisFault is a way for Redis to fail, and its repair.
type redisFault struct {
	name           string
	inject, repair func()
}

// faultRun is TestRedisFaults under way: its rig, the orderhub process
// that must survive every fault, and the figures so far.
type faultRun struct {
	t     *testing.T
	r     *rig
	st    store.Store
	hub   *hub
	tally faultTally
}

// cycle runs one fault from healthy to healthy again, each phase checking
// what it is named for.
func (fr *faultRun) cycle(f redisFault, round, requests int) {
	name := fmt.Sprintf("redis %s (round %d)", f.name, round)
	notes := fr.notesWhileHealthy(name, f.name, round, requests)
	f.inject()
	fr.tally.faults++
	sent := fr.answeredUnknownDuringFault(name, notes)
	f.repair()
	fr.recoveredWithoutRestart(name)
	firsts, retries := fr.finalAfterRecovery(name, notes)
	fr.resendsReplayFirstAnswers(name, notes, firsts)
	fr.appliedExactlyOnce(name, notes)
	fr.tally.retriesAfterRecovery += retries
	fr.t.Logf("%s: %d notifications during the fault (slowest answer %s, /readyz in %s); after the repair %d U retries before the final answers",
		name, len(notes), sent.slowest.Round(time.Millisecond), sent.readyTook.Round(time.Millisecond), retries)
}

// notesWhileHealthy signs the cycle's notifications (half completions of
// orders created now, half audits) and checks that orderhub is ready and
// live before the fault.
func (fr *faultRun) notesWhileHealthy(name, kind string, round, n int) []*note {
	t, r, ctx := fr.t, fr.r, fr.t.Context()
	notes := make([]*note, n)
	for i := range notes {
		rid := fmt.Sprintf("%s-%d-r%d", kind, round, i)
		if i%2 == 0 {
			order := fmt.Sprintf("%s-%d-order%d", kind, round, i)
			if err := r.partner.putOrder(ctx, r.hub.url, order, models.OrderStatusPreparing); err != nil {
				t.Fatal(err)
			}
			notes[i] = r.partner.completion(rid, order)
		} else {
			notes[i] = r.partner.audit(rid, fmt.Sprintf("%s-%d-trade", kind, round), fmt.Sprintf("b%d", i))
		}
	}
	if err := markCreated(ctx, fr.st, notes); err != nil {
		t.Fatal(err)
	}
	if code, _, err := r.readyz(ctx); code != http.StatusOK {
		t.Fatalf("%s: /readyz %d (%v) before the fault", name, code, err)
	}
	if code, err := r.healthz(ctx); code != http.StatusOK {
		t.Errorf("%s: /healthz %d (%v) before the fault", name, code, err)
	}
	return notes
}

// answeredUnknownDuringFault sends notes during the fault: each is answered
// U, HTTP 200, signed, within faultBound, and the probes say not ready but
// live.
func (fr *faultRun) answeredUnknownDuringFault(name string, notes []*note) faultRound {
	t := fr.t
	sent := fr.r.sendDuringFault(t.Context(), notes)
	for i, a := range sent.answers {
		fr.tally.duringFault++
		switch err := sent.errs[i]; {
		case err != nil:
			t.Errorf("%s: %v: %v", name, notes[i], err)
		case !a.unknown():
			t.Errorf("%s: %v: %v, want HTTP 200 U/UNKNOWN_EXCEPTION", name, notes[i], a)
		case a.header.Get("Signature") == "":
			t.Errorf("%s: %v: unsigned answer %v", name, notes[i], a)
		case a.took > faultBound:
			t.Errorf("%s: %v: answered after %s, want at most %s (request deadline %s)", name, notes[i], a.took, faultBound, faultDeadline)
		}
		sent.slowest = max(sent.slowest, a.took)
	}
	fr.tally.slowest = max(fr.tally.slowest, sent.slowest)
	sent.checkProbes(t, name, faultBound)
	fr.tally.slowestReadyz = max(fr.tally.slowestReadyz, sent.readyTook)
	return sent
}

// recoveredWithoutRestart: after the repair the same orderhub process gets
// ready again by itself, and stays live.
func (fr *faultRun) recoveredWithoutRestart(name string) {
	t, r, ctx := fr.t, fr.r, fr.t.Context()
	repaired := time.Now()
	if err := r.waitReady(ctx, 15*time.Second); err != nil {
		t.Fatalf("%s: /readyz after the repair: %v", name, err)
	}
	fr.tally.longestRecovery = max(fr.tally.longestRecovery, time.Since(repaired))
	if r.hub != fr.hub || !fr.hub.alive() {
		t.Fatalf("%s: orderhub did not survive the fault", name)
	}
	if code, err := r.healthz(ctx); code != http.StatusOK {
		t.Errorf("%s: /healthz %d (%v) after the fault", name, code, err)
	}
}

// finalAfterRecovery sends the same requestIds again until each is final:
// S. A request whose script Redis received while hung runs when it resumes
// and holds its requestId for a lease: U until then. It returns the final
// answers and how many U retries they took.
func (fr *faultRun) finalAfterRecovery(name string, notes []*note) (firsts []answer, retries int) {
	t, r := fr.t, fr.r
	firsts = make([]answer, len(notes))
	for i, n := range notes {
		a, sends, err := r.partner.untilFinal(t.Context(), r.hub.url, n, r.cfg.lease+10*time.Second, 50*time.Millisecond)
		fr.tally.afterRecovery++
		retries += sends - 1
		if err != nil {
			t.Errorf("%s: after the repair: %v", name, err)
			continue
		}
		if !a.is(models.ResultStatusSuccess) {
			t.Errorf("%s: %v after the repair: %v, want S", name, n, a)
		}
		firsts[i] = a
	}
	return firsts, retries
}

// resendsReplayFirstAnswers: each notification once more gets its final
// answer back byte for byte.
func (fr *faultRun) resendsReplayFirstAnswers(name string, notes []*note, firsts []answer) {
	t, r := fr.t, fr.r
	for i, n := range notes {
		a, err := r.partner.send(t.Context(), r.hub.url, n)
		if err != nil {
			t.Errorf("%s: resending %v: %v", name, n, err)
		} else if d := sameBytes(firsts[i], a); d != "" {
			fr.tally.dups++
			t.Errorf("%s: resending %v did not replay its answer: %s", name, n, d)
		}
	}
}

// appliedExactlyOnce: every notification shows its effect, no audit is
// listed twice, and no order was written twice by its completion.
func (fr *faultRun) appliedExactlyOnce(name string, notes []*note) {
	t, r := fr.t, fr.r
	s, err := r.partner.stateOf(t.Context(), r.hub.url, notes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fr.tally.dups += len(s.strays)
	for _, stray := range s.strays {
		t.Errorf("%s: duplicate: %s", name, stray)
	}
	for _, n := range notes {
		if _, ok := s.applied[n.requestID]; ok {
			fr.tally.effects++
		} else {
			t.Errorf("%s: %v has no effect", name, n)
		}
	}
	fr.tally.dups += checkWrittenOnce(t, fr.st, notes, name)
}

// TestRedisHangsMidRequest: Redis hangs while a notification is half done,
// after its requestId was claimed and before its effect is committed, the
// one moment a stopped or paused redis-server cannot be made to hit. The
// gate hangs on the commit of that notification. Its answer must still be
// U within the deadline plus the margin (orderhub gives the requestId back
// after a failure, on a context of its own, which its Redis client must
// bound too), and so must the answers of everything sent while Redis
// hangs. When Redis resumes it runs the held commit late; either way the
// notification ends applied exactly once, answered S on retry.
func TestRedisHangsMidRequest(t *testing.T) {
	const requestTimeout = time.Second
	const bound = requestTimeout + 1900*time.Millisecond
	start := time.Now()
	r := newRig(t, rigConfig{requestTimeout: requestTimeout, lease: 3 * time.Second, viaGate: true})
	ctx := t.Context()
	hub := r.hub

	target := r.partner.audit("mid-target", "mid-trade", "b-target")
	others := make([]*note, 4)
	for i := range others {
		others[i] = r.partner.audit(fmt.Sprintf("mid-other%d", i), "mid-trade", fmt.Sprintf("b%d", i))
	}
	if a, err := r.partner.send(ctx, r.hub.url, r.partner.audit("mid-warmup", "mid-warmup", "b")); err != nil || !a.is(models.ResultStatusSuccess) {
		t.Fatalf("before the fault: %v %v", a, err)
	}

	tripped := r.gate.commitTrigger(r.partner.clientID, target)
	sent := time.Now()
	a, err := r.partner.send(ctx, r.hub.url, target)
	took := time.Since(sent)
	select {
	case <-tripped:
	default:
		t.Fatalf("the gate never saw the commit of %v (answer %v, %v): has the store's key layout changed?", target, a, err)
	}
	switch {
	case err != nil:
		t.Errorf("%v hung at its commit: no answer, the connection failed after %s: %v", target, took, err)
	case !a.unknown():
		t.Errorf("%v hung at its commit: %v, want U/UNKNOWN_EXCEPTION", target, a)
	case a.took > bound:
		t.Errorf("%v hung at its commit: answered after %s, want at most %s (request deadline %s)", target, a.took, bound, requestTimeout)
	}
	slowest := took

	round := r.sendDuringFault(ctx, others)
	for i, a := range round.answers {
		switch {
		case round.errs[i] != nil:
			t.Errorf("%v: %v", others[i], round.errs[i])
		case !a.unknown():
			t.Errorf("%v while Redis hangs: %v, want U/UNKNOWN_EXCEPTION", others[i], a)
		case a.took > bound:
			t.Errorf("%v while Redis hangs: answered after %s, want at most %s", others[i], a.took, bound)
		}
		slowest = max(slowest, a.took)
	}
	round.checkProbes(t, "while Redis hangs", bound)

	r.gate.open() // Redis resumes: the held commit runs now, late
	if err := r.waitReady(ctx, 15*time.Second); err != nil {
		t.Fatalf("/readyz after Redis resumed: %v", err)
	}
	if r.hub != hub || !hub.alive() {
		t.Fatal("orderhub did not survive the hang")
	}
	all := append([]*note{target}, others...)
	retries := 0
	for _, n := range all {
		first, sends, err := r.partner.untilFinal(ctx, r.hub.url, n, r.cfg.lease+10*time.Second, 50*time.Millisecond)
		retries += sends - 1
		if err != nil {
			t.Errorf("after the hang: %v", err)
			continue
		}
		if !first.is(models.ResultStatusSuccess) {
			t.Errorf("%v after the hang: %v, want S", n, first)
		}
		again, err := r.partner.send(ctx, r.hub.url, n)
		if err != nil || sameBytes(first, again) != "" {
			t.Errorf("resending %v: %v %v, want its answer replayed: %s", n, again, err, sameBytes(first, again))
		}
	}
	s, err := r.partner.stateOf(ctx, r.hub.url, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, stray := range s.strays {
		t.Errorf("duplicate: %s", stray)
	}
	for _, n := range all {
		if _, ok := s.applied[n.requestID]; !ok {
			t.Errorf("%v has no effect", n)
		}
	}
	t.Logf("hang mid-request: sent-during-hang=%d (slowest answer %s; /readyz %s) U-retries-after=%d effects=%d/%d duplicates=%d runtime=%s",
		len(all), slowest.Round(time.Millisecond), round.readyTook.Round(time.Millisecond), retries, len(s.applied), len(all), len(s.strays), time.Since(start).Round(time.Millisecond))
}

// faultRound is what one round of sending during a fault saw.
type faultRound struct {
	answers               []answer
	errs                  []error
	slowest               time.Duration // of the answers
	readyCode, healthCode int
	readyTook             time.Duration
	readyErr, healthErr   error
}

// sendDuringFault sends notes and probes /readyz and /healthz, all at once.
func (r *rig) sendDuringFault(ctx context.Context, notes []*note) faultRound {
	fr := faultRound{answers: make([]answer, len(notes)), errs: make([]error, len(notes))}
	var wg sync.WaitGroup
	for i, n := range notes {
		wg.Go(func() { fr.answers[i], fr.errs[i] = r.partner.send(ctx, r.hub.url, n) })
	}
	wg.Go(func() { fr.readyCode, fr.readyTook, fr.readyErr = r.readyz(ctx) })
	wg.Go(func() { fr.healthCode, fr.healthErr = r.healthz(ctx) })
	wg.Wait()
	return fr
}

// checkProbes: during a fault /readyz answers 503 within bound, and
// /healthz 200: orderhub itself is fine.
func (fr faultRound) checkProbes(t *testing.T, when string, bound time.Duration) {
	t.Helper()
	if fr.readyErr != nil || fr.readyCode != http.StatusServiceUnavailable || fr.readyTook > bound {
		t.Errorf("%s: /readyz %d after %s (%v), want 503 within %s", when, fr.readyCode, fr.readyTook, fr.readyErr, bound)
	}
	if fr.healthErr != nil || fr.healthCode != http.StatusOK {
		t.Errorf("%s: /healthz %d (%v), want 200: orderhub itself is fine", when, fr.healthCode, fr.healthErr)
	}
}
