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
	const requestTimeout = time.Second
	// Every answer during a fault must come within this: the deadline plus
	// a generous margin for a loaded machine, yet below go-redis's own 3 s
	// read timeout, so that a Redis client ignoring the deadline fails it.
	const bound = requestTimeout + 1900*time.Millisecond
	start := time.Now()
	r := newRig(t, rigConfig{redisArgs: durableRedis, requestTimeout: requestTimeout, lease: 3 * time.Second})
	st := store.NewRedis(r.redis.Client(t))
	ctx := t.Context()
	hub := r.hub

	faults := []struct {
		name           string
		inject, repair func()
	}{
		{"stopped", r.redis.Stop, r.redis.Restart},
		{"hung", r.redis.Pause, r.redis.Resume},
	}
	var tally faultTally
	for round := 1; round <= sc.faultRounds && !t.Failed(); round++ {
		for _, f := range faults {
			name := fmt.Sprintf("redis %s (round %d)", f.name, round)
			notes := make([]*note, sc.faultRequests)
			for i := range notes {
				rid := fmt.Sprintf("%s-%d-r%d", f.name, round, i)
				if i%2 == 0 {
					order := fmt.Sprintf("%s-%d-order%d", f.name, round, i)
					if err := r.partner.putOrder(ctx, r.hub.url, order, models.OrderStatusPreparing); err != nil {
						t.Fatal(err)
					}
					notes[i] = r.partner.completion(rid, order)
				} else {
					notes[i] = r.partner.audit(rid, fmt.Sprintf("%s-%d-trade", f.name, round), fmt.Sprintf("b%d", i))
				}
			}
			if err := markCreated(ctx, st, notes); err != nil {
				t.Fatal(err)
			}
			if code, _, err := r.readyz(ctx); code != http.StatusOK {
				t.Fatalf("%s: /readyz %d (%v) before the fault", name, code, err)
			}
			if code, err := r.healthz(ctx); code != http.StatusOK {
				t.Errorf("%s: /healthz %d (%v) before the fault", name, code, err)
			}

			f.inject()
			tally.faults++
			sent := r.sendDuringFault(ctx, notes)
			answers, errs := sent.answers, sent.errs
			var slowest time.Duration
			for i, a := range answers {
				tally.duringFault++
				switch {
				case errs[i] != nil:
					t.Errorf("%s: %v: %v", name, notes[i], errs[i])
				case !a.unknown():
					t.Errorf("%s: %v: %v, want HTTP 200 U/UNKNOWN_EXCEPTION", name, notes[i], a)
				case a.header.Get("Signature") == "":
					t.Errorf("%s: %v: unsigned answer %v", name, notes[i], a)
				case a.took > bound:
					t.Errorf("%s: %v: answered after %s, want at most %s (request deadline %s)", name, notes[i], a.took, bound, requestTimeout)
				}
				slowest = max(slowest, a.took)
			}
			tally.slowest = max(tally.slowest, slowest)
			sent.checkProbes(t, name, bound)
			tally.slowestReadyz = max(tally.slowestReadyz, sent.readyTook)

			f.repair()
			repaired := time.Now()
			if err := r.waitReady(ctx, 15*time.Second); err != nil {
				t.Fatalf("%s: /readyz after the repair: %v", name, err)
			}
			tally.longestRecovery = max(tally.longestRecovery, time.Since(repaired))
			if r.hub != hub || !hub.alive() {
				t.Fatalf("%s: orderhub did not survive the fault", name)
			}
			if code, err := r.healthz(ctx); code != http.StatusOK {
				t.Errorf("%s: /healthz %d (%v) after the fault", name, code, err)
			}

			// The same requestIds again: S, exactly once. A request whose
			// script Redis received while hung runs when it resumes and
			// holds its requestId for a lease: U until then.
			firsts := make([]answer, len(notes))
			retries := 0
			for i, n := range notes {
				a, sends, err := r.partner.untilFinal(ctx, r.hub.url, n, r.cfg.lease+10*time.Second, 50*time.Millisecond)
				tally.afterRecovery++
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
			for i, n := range notes {
				a, err := r.partner.send(ctx, r.hub.url, n)
				if err != nil {
					t.Errorf("%s: resending %v: %v", name, n, err)
				} else if d := sameBytes(firsts[i], a); d != "" {
					tally.dups++
					t.Errorf("%s: resending %v did not replay its answer: %s", name, n, d)
				}
			}
			s, err := r.partner.stateOf(ctx, r.hub.url, notes)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			tally.dups += len(s.strays)
			for _, stray := range s.strays {
				t.Errorf("%s: duplicate: %s", name, stray)
			}
			for _, n := range notes {
				if _, ok := s.applied[n.requestID]; ok {
					tally.effects++
				} else {
					t.Errorf("%s: %v has no effect", name, n)
				}
			}
			writes, err := completionWrites(ctx, st, notes)
			if err != nil {
				t.Fatal(err)
			}
			for id, w := range writes {
				if w != 1 {
					tally.dups++
					t.Errorf("%s: order %s written %d times by its completion, want once", name, id, w)
				}
			}
			tally.retriesAfterRecovery += retries
			t.Logf("%s: %d notifications during the fault (slowest answer %s, /readyz in %s); after the repair %d U retries before the final answers",
				name, len(notes), slowest.Round(time.Millisecond), sent.readyTook.Round(time.Millisecond), retries)
		}
	}
	t.Logf("faults: %v runtime=%s", tally, time.Since(start).Round(time.Millisecond))
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
