package contract

import (
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

// The limits here are per hour: an interval of many minutes between two
// calls' worth of quota, so no outcome depends on how fast the test runs.

const (
	codeLimited = "REQUEST_TRAFFIC_EXCEED_LIMIT"
	msgLimited  = "The request traffic exceeds the limit."
)

// rateLimitHook builds the service's limiter over the env's Redis client.
type rateLimitHook func(rdb redis.UniversalClient) ratelimit.Limiter

// limiter is the service's limiter (nil: no limits).
func (c envConfig) limiter(rdb redis.UniversalClient) ratelimit.Limiter {
	if c.rateLimit == nil {
		return nil
	}
	return c.rateLimit(rdb)
}

// withRateLimit limits the service's partner calls through the env's Redis
// (a redis-server or a cluster), whose client it stores in *rdb unless rdb
// is nil: for a second instance, or to give the quota back.
func withRateLimit(limits ratelimit.Limits, rdb *redis.UniversalClient) envOption {
	return func(c *envConfig) {
		c.rateLimit = func(c redis.UniversalClient) ratelimit.Limiter {
			if rdb != nil {
				*rdb = c
			}
			return ratelimit.NewRedis(c, limits)
		}
	}
}

// limits parses the limits a test states ("" for none).
func limits(t *testing.T, perClient, global string) ratelimit.Limits {
	t.Helper()
	var l ratelimit.Limits
	var err1, err2 error
	l.PerClient, err1 = ratelimit.ParseLimit(perClient)
	l.Global, err2 = ratelimit.ParseLimit(global)
	if err1 != nil || err2 != nil {
		t.Fatalf("test bug: %v %v", err1, err2)
	}
	return l
}

// otherClient is registered beside the env's own client, with the alt key.
func otherClient(id string) string { return id + "-other" }

func twoClients(t testing.TB, id string, k testKeys, ops []string) []clients.Entry {
	return []clients.Entry{
		testkit.Entry(t, id, &k.client.PublicKey, ops...),
		testkit.Entry(t, otherClient(id), &k.alt.PublicKey, ops...),
	}
}

// as is e calling as client id with key, reporting to t.
func (e *env) as(t *testing.T, id string, key *rsa.PrivateKey) *env {
	t.Helper()
	cp := *e
	cp.clientID = id
	cp.signer = &signature.Signer{ClientID: id, KeyVersion: 1, Key: key}
	cp.bind(t)
	return &cp
}

// instance is another orderhub over e's store, with limiter lim: the limits
// hold across both only if lim counts in e's Redis.
func (e *env) instance(t *testing.T, lim ratelimit.Limiter) *env {
	t.Helper()
	h, err := httpapi.New(e.counting, httpapi.Config{
		Clients:        e.clients,
		SigningKey:     e.keys.orderhub,
		AdminToken:     adminToken,
		RequestTimeout: 2 * time.Second,
		RateLimit:      lim,
	})
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	cp := *e
	cp.srv = httptest.NewServer(h)
	t.Cleanup(cp.srv.Close)
	cp.bind(t)
	return &cp
}

// wantLimited checks a refusal: F/REQUEST_TRAFFIC_EXCEED_LIMIT, HTTP 200,
// answered to the caller (the conformance transport has checked the spec
// and orderhub's signature).
func (e *env) wantLimited(r reply) {
	e.t.Helper()
	got := r.wantResult(e.t, http.StatusOK, models.ResultStatusFailure, codeLimited)
	if got.ResultMessage != msgLimited {
		e.t.Errorf("message %q, want %q", got.ResultMessage, msgLimited)
	}
	if r.header.Get("Client-Id") != e.clientID || r.header.Get("Signature") == "" {
		e.t.Errorf("refusal not signed for %s: %v", e.clientID, r.header)
	}
}

func (e *env) wantInquired(r reply) {
	e.t.Helper()
	r.wantResult(e.t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
}

func TestRateLimitPerClient(t *testing.T) {
	e := newEnv(t, withRateLimit(limits(t, "3/h", ""), nil), withRegistry(twoClients))
	order := e.newOrder(models.OrderStatusPreparing)

	// Badly signed calls in the client's name spend none of its quota: a
	// stranger cannot use it up.
	forger := &signature.Signer{ClientID: e.clientID, KeyVersion: 1, Key: e.keys.stranger}
	for range 5 {
		req := e.request(http.MethodPost, pathInquire, "application/json", mustJSON(t, models.InquireOrderDetailRequest{RequestOrderID: order}))
		if err := forger.Edit(e.ctx(), req); err != nil {
			t.Fatal(err)
		}
		e.do(req).wantResult(t, http.StatusOK, models.ResultStatusFailure, "INVALID_SIGNATURE")
	}
	for range 3 {
		e.wantInquired(e.call(opInquire, inquiry(order)))
	}
	e.wantLimited(e.call(opInquire, inquiry(order)))
	e.wantLimited(e.raw(http.MethodPost, pathInquire, "application/json", []byte(`{}`))) // before validation
	// A notification is limited once it is known to be new work (after
	// validation and the idempotency check): an invalid one is answered so.
	e.raw(http.MethodPost, pathAudit, "application/json", []byte(`{}`)).wantResult(t, http.StatusOK, models.ResultStatusFailure, "PARAM_ILLEGAL")

	t.Run("another client is unaffected", func(t *testing.T) {
		other := e.as(t, otherClient(e.clientID), e.keys.alt)
		for range 3 {
			other.wantInquired(other.call(opInquire, inquiry(order)))
		}
		other.wantLimited(other.call(opInquire, inquiry(order)))
	})
	t.Run("the operator API and service endpoints are not limited", func(t *testing.T) {
		e := e.sub(t)
		if got := e.putOrder(order, models.OrderStatusReady, nil); got.OrderStatus != models.OrderStatusReady {
			t.Errorf("putOrder: %+v", got)
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if r := e.do(e.request(http.MethodGet, path, "", nil)); r.status != http.StatusOK {
				t.Errorf("GET %s: %v", path, r)
			}
		}
	})
}

func TestRateLimitGlobalCeiling(t *testing.T) {
	e := newEnv(t, withRateLimit(limits(t, "5/h", "3/h"), nil), withRegistry(twoClients))
	other := e.as(t, otherClient(e.clientID), e.keys.alt)
	order := e.newOrder(models.OrderStatusReady)
	e.wantInquired(e.call(opInquire, inquiry(order)))
	e.wantInquired(e.call(opInquire, inquiry(order)))
	other.wantInquired(other.call(opInquire, inquiry(order)))
	// Both clients are far below their own 5: the ceiling refuses them.
	other.wantLimited(other.call(opInquire, inquiry(order)))
	e.wantLimited(e.call(opInquire, inquiry(order)))
}

func TestRateLimitSharedByInstances(t *testing.T) {
	var rdb redis.UniversalClient
	l := limits(t, "2/h", "")
	e := newEnv(t, withRateLimit(l, &rdb))
	two := e.instance(t, ratelimit.NewRedis(rdb, l))
	order := e.newOrder(models.OrderStatusReady)
	e.wantInquired(e.call(opInquire, inquiry(order)))
	two.wantInquired(two.call(opInquire, inquiry(order)))
	e.wantLimited(e.call(opInquire, inquiry(order)))
	two.wantLimited(two.call(opInquire, inquiry(order)))
}

// A refused notification has no effect and claims no requestId: sent again
// once the quota is back, it is processed as new. Repeats of a final answer
// spend no quota and are never refused.
func TestRateLimitedNotificationIsNotRecorded(t *testing.T) {
	var rdb redis.UniversalClient
	e := newEnv(t, withRateLimit(limits(t, "2/h", ""), &rdb))
	// refill gives the client's quota back, as the passing hour would:
	// its key (layout in impl/ratelimit) expires.
	refill := func() {
		t.Helper()
		if n, err := rdb.Del(e.ctx(), "orderhub:rate:{rate}:client:"+e.clientID).Result(); n != 1 || err != nil {
			t.Fatalf("DEL the client's rate key: %d %v", n, err)
		}
	}

	t.Run("notifyOrderCompletion", func(t *testing.T) {
		e := e.sub(t)
		order, requestID := e.newOrder(models.OrderStatusPreparing), uid("req")
		e.wantInquired(e.call(opInquire, inquiry(order)))
		e.wantInquired(e.call(opInquire, inquiry(order)))
		effects := e.effects()
		e.wantLimited(e.call(opCompletion, completion(requestID, order)))
		unchanged(t, e, order, models.OrderStatusPreparing)
		if n := e.effects() - effects; n != 0 {
			t.Errorf("%d effects of a refused notification", n)
		}
		refill()
		first := e.call(opCompletion, completion(requestID, order))
		first.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		if got := e.orderStatus(order); got != models.OrderStatusCompleted {
			t.Errorf("order %s after the retry, want COMPLETED", got)
		}
		// Repeats of a final answer are replayed whatever the limits: a
		// partner whose S was lost never gets a final F for it instead.
		for range 3 {
			sameAnswer(t, first, e.call(opCompletion, completion(requestID, order)))
		}
		e.wantInquired(e.call(opInquire, inquiry(order))) // the last of the quota
		e.wantLimited(e.call(opCompletion, completion(uid("req"), e.newOrder(models.OrderStatusPreparing))))
		sameAnswer(t, first, e.call(opCompletion, completion(requestID, order)))
		if n := e.effects() - effects; n != 1 {
			t.Errorf("%d effects, want 1", n)
		}
		refill()
	})
	t.Run("notifyDeliveryAuditResult", func(t *testing.T) {
		e := e.sub(t)
		n := models.NotifyDeliveryAuditResultRequest{RequestID: uid("req"), TradeID: uid("trade"), DeliveryBatchID: "b1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept}
		e.wantInquired(e.call(opInquire, inquiry(e.newOrder(models.OrderStatusReady))))
		e.wantInquired(e.call(opInquire, inquiry(e.newOrder(models.OrderStatusReady))))
		e.wantLimited(e.call(opAudit, n))
		if got := e.audits(n.TradeID); len(got) != 0 {
			t.Errorf("audits after a refused notification: %+v", got)
		}
		refill()
		e.call(opAudit, n).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		if got := e.audits(n.TradeID); len(got) != 1 {
			t.Errorf("audits after the retry: %+v, want one", got)
		}
	})
}

// A limiter that cannot reach its Redis answers U: the caller retries.
func TestRateLimiterDownIsUnknown(t *testing.T) {
	e := newEnv(t)
	down := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: down.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond, DialerRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	two := e.instance(t, ratelimit.NewRedis(rdb, limits(t, "100/h", "")))
	order := e.newOrder(models.OrderStatusPreparing)
	two.wantInquired(two.call(opInquire, inquiry(order)))
	down.Stop()
	two.call(opInquire, inquiry(order)).wantResult(t, http.StatusOK, models.ResultStatusUnknown, "UNKNOWN_EXCEPTION")
	two.call(opCompletion, completion(uid("req"), order)).wantResult(t, http.StatusOK, models.ResultStatusUnknown, "UNKNOWN_EXCEPTION")
	unchanged(t, e, order, models.OrderStatusPreparing)
}
