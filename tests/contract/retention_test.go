package contract

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/store"
)

// manualClock is a clock that moves only when told, read by the service,
// its in-memory store and the signer alike (Request-Time stays in the
// window however far it moves).
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Now().Truncate(time.Second)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withManualClock(c *manualClock) envOption {
	return func(cfg *envConfig) { cfg.now, cfg.signerNow = c.Now, c.Now }
}

// orderGone fails unless the operator API no longer knows the order.
func (e *env) orderGone(id string) {
	e.t.Helper()
	res, err := e.c.GetOrderWithResponse(e.ctx(), id, admin)
	if err != nil {
		e.t.Fatalf("getOrder: %v", err)
	}
	if res.StatusCode() != http.StatusNotFound {
		e.t.Fatalf("getOrder %s: HTTP %d %s, want 404", id, res.StatusCode(), res.Body)
	}
}

// Final orders and a trade's audits expire their final retention after the
// last write, never before an answer about them; non-final orders never.
// On the in-memory store, with a clock the test moves.
func TestFinalRetentionMemory(t *testing.T) {
	clock := newManualClock()
	e := newEnv(t, withMemoryStore(), withManualClock(clock), withRetention(time.Hour, 2*time.Hour))

	open := e.newOrder(models.OrderStatusPreparing)
	cancelled := e.newOrder(models.OrderStatusCancelled)
	completed, rid := e.newOrder(models.OrderStatusReady), uid("req")
	clock.Advance(30 * time.Minute)
	e.call(opCompletion, completion(rid, completed)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	trade := uid("trade")
	e.call(opAudit, models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: trade, DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept})

	clock.Advance(2*time.Hour - 30*time.Minute) // 2 h after the cancellation
	e.orderGone(cancelled)
	e.orderStatus(completed) // completed 90 minutes ago
	if got := e.audits(trade); len(got) != 1 {
		t.Fatalf("audits after 90 minutes: %+v", got)
	}
	clock.Advance(30 * time.Minute)
	e.orderGone(completed)
	if got := e.audits(trade); len(got) != 0 {
		t.Fatalf("audits 2 h after the last: %+v, want none", got)
	}
	e.orderStatus(open)
	// The expired order's id is free: a new order may take it.
	e.putOrder(cancelled, models.OrderStatusOrderSuccess, nil)
}

// The same rules in Redis, read from the keys' TTLs, set by the very
// scripts that write (single node, or a cluster with ORDERHUB_TEST_REDIS).
func TestFinalRetentionRedisTTLs(t *testing.T) {
	const answers, final = time.Hour, 2 * time.Hour
	e := newEnv(t, withRetention(answers, final))
	rdb := e.redis.Client(t)
	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := rdb.PTTL(e.ctx(), key).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", key, err)
		}
		return d
	}
	within := func(key string, want time.Duration) {
		t.Helper()
		if got := ttl(key); got > want || got < want-5*time.Second {
			t.Errorf("PTTL %s = %v, want about %v", key, got, want)
		}
	}

	open := e.newOrder(models.OrderStatusReady)
	if got := ttl(store.OrderKey(open)); got != -1 {
		t.Errorf("a non-final order has PTTL %v, want none (-1)", got)
	}
	within(store.OrderKey(e.newOrder(models.OrderStatusRejected)), final)

	rid := uid("req")
	e.call(opCompletion, completion(rid, open)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	within(store.OrderKey(open), final)
	k := store.Key{Op: opCompletion.id, ClientID: e.clientID, RequestID: rid, Scope: store.ScopeOrder, ScopeID: open}
	within(store.RecordKey(k), answers)
	within(store.ClaimKey(k), answers)

	trade := uid("trade")
	e.call(opAudit, models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: trade, DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept})
	within(store.AuditsKey(trade), final)
}

// A stored answer never outlives the order it speaks of, even when the
// answers are kept longer than final orders (a configuration the command
// refuses, which the store does not rely on).
func TestStoredAnswerKeepsItsOrder(t *testing.T) {
	clock := newManualClock()
	e := newEnv(t, withMemoryStore(), withManualClock(clock), withRetention(3*time.Hour, time.Hour))
	id := e.newOrder(models.OrderStatusCompleted)
	clock.Advance(50 * time.Minute)
	rid := uid("req")
	sent := e.call(opCompletion, completion(rid, id)) // converges: S, no write
	sent.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	clock.Advance(3*time.Hour - time.Second)
	e.wantStored(opCompletion.id, rid, sent)
	e.orderStatus(id)
	clock.Advance(time.Second)
	e.wantNotStored(opCompletion.id, e.clientID, rid)
	e.orderGone(id)
}

// TestRedisFootprint measures, with MEMORY USAGE, what one order, one
// delivery audit and one stored answer (its record and its claim) cost in
// Redis, with ids of the partners' usual lengths; the README quotes it. The
// ceilings catch a change that makes them grow.
func TestRedisFootprint(t *testing.T) {
	e := newEnv(t, withRetention(72*time.Hour, 720*time.Hour))
	rdb := e.redis.Client(t)
	usage := func(key string) int64 {
		t.Helper()
		n, err := rdb.MemoryUsage(e.ctx(), key, 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return n
	}
	const (
		orderID = "pds_2109220000232584_2022050400309038584_1"
		tradeID = "T2024060100012345"
	)
	info := models.ExtendInfo(`{"tableNo":"12","remark":"no onions"}`)
	e.putOrder(orderID, models.OrderStatusReady, &info)
	rid := orderID + "_1717200900"
	e.call(opCompletion, completion(rid, orderID)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	auditRID := "20240601T081500Z-7d1c3a"
	e.call(opAudit, models.NotifyDeliveryAuditResultRequest{RequestID: auditRID, TradeID: tradeID, DeliveryBatchID: "DB202406010001", DeliveryAuditStatus: models.DeliveryAuditStatusAccept}).
		wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")

	k := store.Key{Op: opCompletion.id, ClientID: e.clientID, RequestID: rid, Scope: store.ScopeOrder, ScopeID: orderID}
	ak := store.Key{Op: opAudit.id, ClientID: e.clientID, RequestID: auditRID, Scope: store.ScopeTrade, ScopeID: tradeID}
	for _, m := range []struct {
		what string
		keys []string
		max  int64
	}{
		{"order", []string{store.OrderKey(orderID)}, 768},
		{"delivery audits, one batch", []string{store.AuditsKey(tradeID)}, 512},
		{"completion answer: record", []string{store.RecordKey(k)}, 1536},
		{"completion answer: claim", []string{store.ClaimKey(k)}, 384},
		{"completion answer: record and claim", []string{store.RecordKey(k), store.ClaimKey(k)}, 1920},
		{"audit answer: record and claim", []string{store.RecordKey(ak), store.ClaimKey(ak)}, 1920},
	} {
		var n int64
		for _, key := range m.keys {
			n += usage(key)
		}
		t.Logf("%-38s %5d bytes", m.what, n)
		if n > m.max {
			t.Errorf("%s: %d bytes, more than %d", m.what, n, m.max)
		}
	}
	for key, field := range map[string]string{store.RecordKey(k): "resp", store.OrderKey(orderID): "json"} {
		v, err := rdb.HGet(e.ctx(), key, field).Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s's %s: %d bytes", key, field, len(v))
	}
	one := usage(store.AuditsKey(tradeID))
	e.call(opAudit, models.NotifyDeliveryAuditResultRequest{RequestID: auditRID + "-2", TradeID: tradeID, DeliveryBatchID: "DB202406010002", DeliveryAuditStatus: models.DeliveryAuditStatusAccept}).
		wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	t.Logf("a further batch of the trade: %d bytes", usage(store.AuditsKey(tradeID))-one)
}
