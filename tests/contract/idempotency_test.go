package contract

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/orderhub/orderhub/generated/models"
)

// sameAnswer fails unless again is first, byte for byte: HTTP status, body,
// and the Response-Time, Client-Id and Signature headers.
func sameAnswer(t *testing.T, first, again reply) {
	t.Helper()
	if again.status != first.status {
		t.Errorf("HTTP status %d, first was %d", again.status, first.status)
	}
	if string(again.body) != string(first.body) {
		t.Errorf("body differs:\nfirst %s\nagain %s", first.body, again.body)
	}
	for _, h := range []string{"Response-Time", "Client-Id", "Signature", "Content-Type"} {
		if got, want := again.header.Values(h), first.header.Values(h); !cmp.Equal(got, want) {
			t.Errorf("header %s %q, first was %q", h, got, want)
		}
	}
	if first.header.Get("Response-Time") == "" {
		t.Errorf("no Response-Time in %v", first)
	}
}

func TestReplayIsByteIdentical(t *testing.T) {
	t.Run("notifyOrderCompletion", func(t *testing.T) {
		e := newEnv(t, withStepClock(newStepClock()))
		id, rid := e.newOrder(models.OrderStatusPreparing), uid("req")
		first := e.call(opCompletion, completion(rid, id))
		first.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		v := e.version(id)
		again := e.call(opCompletion, completion(rid, id))
		sameAnswer(t, first, again)
		if got := e.version(id); got != v {
			t.Errorf("the replay wrote the order: version %d → %d", v, got)
		}
		// The clock moves on: an answer computed afresh would have shown it.
		other := e.call(opCompletion, completion(uid("req"), id))
		if other.header.Get("Response-Time") == first.header.Get("Response-Time") {
			t.Errorf("a fresh answer has the first answer's Response-Time %q: the clock does not advance", first.header.Get("Response-Time"))
		}
	})
	t.Run("notifyDeliveryAuditResult", func(t *testing.T) {
		e := newEnv(t, withStepClock(newStepClock()))
		b := models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: uid("trade"), DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept}
		first := e.call(opAudit, b)
		first.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		recorded := e.audits(b.TradeID)
		again := e.call(opAudit, b)
		sameAnswer(t, first, again)
		if diff := cmp.Diff(recorded, e.audits(b.TradeID)); diff != "" {
			t.Errorf("the replay changed the audit (-before +after):\n%s", diff)
		}
		b.RequestID = uid("req")
		other := e.call(opAudit, b)
		if other.header.Get("Response-Time") == first.header.Get("Response-Time") {
			t.Errorf("a fresh answer has the first answer's Response-Time %q: the clock does not advance", first.header.Get("Response-Time"))
		}
	})
}

func TestReplayedFailureStaysFinal(t *testing.T) {
	e := newEnv(t, withStepClock(newStepClock()))
	id, rid := uid("order"), uid("req")
	first := e.call(opCompletion, completion(rid, id))
	first.wantResult(t, http.StatusOK, models.ResultStatusFailure, "ORDER_NOT_EXIST")

	// The order appears afterwards; the answer to rid was final.
	e.putOrder(id, models.OrderStatusPreparing, nil)
	again := e.call(opCompletion, completion(rid, id))
	sameAnswer(t, first, again)
	unchanged(t, e, id, models.OrderStatusPreparing)

	// A new requestId is a new request.
	e.call(opCompletion, completion(uid("req"), id)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	unchanged(t, e, id, models.OrderStatusCompleted)
}

// statusOf reads result.resultStatus without a *testing.T (for goroutines).
func statusOf(body []byte) models.ResultStatus {
	var r struct {
		Result models.Result `json:"result"`
	}
	_ = json.Unmarshal(body, &r)
	return r.Result.ResultStatus
}

// hammer sends the same request from n goroutines at once; each retries on
// U, as partners do, until it gets a final answer. It returns the final
// answers and how many U answers were seen.
func hammer(t *testing.T, n int, send func(ctx context.Context) (reply, error)) ([]reply, int) {
	t.Helper()
	const maxAttempts = 2000
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		retries int
		start   = make(chan struct{})
		answers = make([]reply, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			for range maxAttempts {
				r, err := send(t.Context())
				if err != nil {
					t.Errorf("goroutine %d: %v", i, err)
					return
				}
				if statusOf(r.body) != models.ResultStatusUnknown {
					answers[i] = r
					return
				}
				mu.Lock()
				retries++
				mu.Unlock()
			}
			t.Errorf("goroutine %d: no final answer after %d attempts", i, maxAttempts)
		})
	}
	close(start)
	wg.Wait()
	return answers, retries
}

func checkAllSame(t *testing.T, answers []reply) {
	t.Helper()
	first := answers[0]
	first.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	for i, r := range answers[1:] {
		if r.status != first.status || string(r.body) != string(first.body) ||
			r.header.Get("Response-Time") != first.header.Get("Response-Time") {
			t.Errorf("answer %d differs from answer 0:\n%v Response-Time %q\n%v Response-Time %q",
				i+1, r, r.header.Get("Response-Time"), first, first.header.Get("Response-Time"))
		}
	}
}

func TestConcurrentIdenticalNotifications(t *testing.T) {
	const n = 50
	t.Run("notifyOrderCompletion", func(t *testing.T) {
		e := newEnv(t, withStepClock(newStepClock()))
		id, rid := e.newOrder(models.OrderStatusPreparing), uid("req")
		before := e.version(id)
		answers, retries := hammer(t, n, func(ctx context.Context) (reply, error) {
			return e.send(ctx, opCompletion, completion(rid, id))
		})
		t.Logf("%d U answers retried", retries)
		checkAllSame(t, answers)
		if got := e.effects(); got != 1 {
			t.Errorf("%d effects committed, want exactly 1", got)
		}
		if got := e.version(id); got != before+1 {
			t.Errorf("order version %d → %d, want exactly one write", before, got)
		}
		unchanged(t, e, id, models.OrderStatusCompleted)
	})
	t.Run("notifyDeliveryAuditResult", func(t *testing.T) {
		e := newEnv(t, withStepClock(newStepClock()))
		b := models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: uid("trade"), DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusReject}
		answers, retries := hammer(t, n, func(ctx context.Context) (reply, error) { return e.send(ctx, opAudit, b) })
		t.Logf("%d U answers retried", retries)
		checkAllSame(t, answers)
		if got := e.effects(); got != 1 {
			t.Errorf("%d effects committed, want exactly 1", got)
		}
		got := e.audits(b.TradeID)
		if len(got) != 1 || got[0].RequestID != b.RequestID || got[0].DeliveryAuditStatus != models.DeliveryAuditStatusReject {
			t.Errorf("audits %+v, want the one REJECT of %s", got, b.RequestID)
		}
	})
}

func TestReusedRequestIDWithAnotherBody(t *testing.T) {
	t.Run("notifyOrderCompletion", func(t *testing.T) {
		e := newEnv(t, withStepClock(newStepClock()))
		a, b, rid := e.newOrder(models.OrderStatusPreparing), e.newOrder(models.OrderStatusAccepted), uid("req")
		first := e.call(opCompletion, completion(rid, a))
		first.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		storedA, err := e.st.GetOrder(e.ctx(), a)
		if err != nil {
			t.Fatal(err)
		}
		vb := e.version(b)

		e.call(opCompletion, completion(rid, b)).wantResult(t, http.StatusOK, models.ResultStatusFailure, "REPEAT_REQ_INCONSISTENT")

		if got, err := e.st.GetOrder(e.ctx(), a); err != nil || !cmp.Equal(got, storedA) {
			t.Errorf("the original order changed (-before +after):\n%s (err %v)", cmp.Diff(storedA, got), err)
		}
		unchanged(t, e, b, models.OrderStatusAccepted)
		if got := e.version(b); got != vb {
			t.Errorf("the other order was written: version %d → %d", vb, got)
		}
		if got := e.effects(); got != 1 {
			t.Errorf("%d effects committed, want the original one only", got)
		}
		// The original answer is still what rid replays.
		sameAnswer(t, first, e.call(opCompletion, completion(rid, a)))
	})
	t.Run("notifyDeliveryAuditResult", func(t *testing.T) {
		e := newEnv(t, withStepClock(newStepClock()))
		orig := models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: uid("trade"), DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept}
		first := e.call(opAudit, orig)
		first.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		recorded := e.audits(orig.TradeID)

		changed := orig
		changed.DeliveryAuditStatus = models.DeliveryAuditStatusReject
		e.call(opAudit, changed).wantResult(t, http.StatusOK, models.ResultStatusFailure, "REPEAT_REQ_INCONSISTENT")
		otherTrade := orig
		otherTrade.TradeID = uid("trade")
		e.call(opAudit, otherTrade).wantResult(t, http.StatusOK, models.ResultStatusFailure, "REPEAT_REQ_INCONSISTENT")

		if diff := cmp.Diff(recorded, e.audits(orig.TradeID)); diff != "" {
			t.Errorf("the original audit changed (-before +after):\n%s", diff)
		}
		if got := e.audits(otherTrade.TradeID); len(got) != 0 {
			t.Errorf("audits recorded for the other trade: %+v", got)
		}
		if got := e.effects(); got != 1 {
			t.Errorf("%d effects committed, want the original one only", got)
		}
		sameAnswer(t, first, e.call(opAudit, orig))
	})
}
