package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/impl/store/storetest"
	"github.com/orderhub/orderhub/tests/redistest"
)

// TestRedis runs the shared suite on one server, emptied for each subtest.
func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		if err := admin.FlushAll(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHALL: %v", err)
		}
		r := store.NewRedis(redis.NewClient(&redis.Options{Addr: srv.Addr()}))
		t.Cleanup(func() { _ = r.Close() })
		return storetest.Harness{
			Store: r,
			ExpireLease: func(k store.Key) {
				// A non-positive PEXPIRE deletes the key at once.
				if err := admin.PExpire(t.Context(), store.RecordKey(k), 0).Err(); err != nil {
					t.Fatalf("PEXPIRE: %v", err)
				}
			},
			Age: func(d time.Duration) { age(t, admin, d) },
		}
	})
}

// age lets d pass for every key with a TTL on the server, or on every master
// of a cluster: Redis' own expiry, without waiting for it.
func age(t *testing.T, c redis.UniversalClient, d time.Duration) {
	t.Helper()
	onNode := func(ctx context.Context, n *redis.Client) error {
		iter := n.Scan(ctx, 0, "*", 0).Iterator()
		for iter.Next(ctx) {
			ttl, err := n.PTTL(ctx, iter.Val()).Result()
			if err != nil {
				return err
			}
			if ttl < 0 { // no deadline (-1), or gone meanwhile (-2)
				continue
			}
			// A deadline at or before now deletes the key.
			if err := n.PExpire(ctx, iter.Val(), ttl-d).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	var err error
	switch c := c.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(t.Context(), onNode)
	case *redis.Client:
		err = onNode(t.Context(), c)
	default:
		t.Fatalf("age: a %T", c)
	}
	if err != nil {
		t.Fatalf("age by %v: %v", d, err)
	}
}

// TestRedisCluster runs the shared suite on a three-master cluster, emptied
// for each subtest: a script whose keys do not share a slot fails here
// (CROSSSLOT), as it would in production.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	admin := c.Client(t)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		if err := c.FlushAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		r := store.NewRedis(redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()}))
		t.Cleanup(func() { _ = r.Close() })
		return storetest.Harness{
			Store: r,
			ExpireLease: func(k store.Key) {
				if err := admin.PExpire(t.Context(), store.RecordKey(k), 0).Err(); err != nil {
					t.Fatalf("PEXPIRE: %v", err)
				}
			},
			Age: func(d time.Duration) { age(t, admin, d) },
		}
	})
}

// newRedis starts a server of its own for a test that inspects or breaks it.
func newRedis(t *testing.T) (*store.Redis, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	r := store.NewRedis(redis.NewClient(&redis.Options{Addr: srv.Addr()}))
	t.Cleanup(func() { _ = r.Close() })
	return r, srv.Client(t), srv
}

// A record must hash to its entity's slot (Commit is one script over both
// keys on Cluster), whatever characters the ids hold. CLUSTER KEYSLOT
// needs cluster support on (Redis 7.0), not slots or other nodes.
func TestRedisKeySlots(t *testing.T) {
	admin := redistest.Start(t, "--cluster-enabled", "yes").Client(t)
	slot := func(key string) int64 {
		t.Helper()
		s, err := admin.ClusterKeySlot(t.Context(), key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", key, err)
		}
		return s
	}
	for _, id := range []string{"pds_2109220000232584_1", "x{y}z", "}{", "a:b%c", ""} {
		k := store.Key{Op: "op{", ClientID: "c}", RequestID: "{r}", Scope: store.ScopeOrder, ScopeID: id}
		if rec, ent := slot(store.RecordKey(k)), slot(store.OrderKey(id)); rec != ent {
			t.Errorf("order %q: record %q in slot %d, order %q in slot %d", id, store.RecordKey(k), rec, store.OrderKey(id), ent)
		}
		k.Scope = store.ScopeTrade
		if rec, ent := slot(store.RecordKey(k)), slot(store.AuditsKey(id)); rec != ent {
			t.Errorf("trade %q: record %q in slot %d, audits %q in slot %d", id, store.RecordKey(k), rec, store.AuditsKey(id), ent)
		}
	}
	// The claim is the requestId's, whatever entity the request names.
	a := store.Key{Op: "op", ClientID: "c", RequestID: "r", Scope: store.ScopeOrder, ScopeID: "A"}
	b := a
	b.ScopeID = "B"
	if store.ClaimKey(a) != store.ClaimKey(b) {
		t.Errorf("claim keys differ by entity: %q, %q", store.ClaimKey(a), store.ClaimKey(b))
	}
}

// The layout and lifetimes operators rely on: lease while in progress,
// retention (or none) once done, the claim living as long as the record.
func TestRedisLayoutAndTTLs(t *testing.T) {
	ctx := t.Context()
	r, admin, _ := newRedis(t)
	const lease = 30 * time.Second
	hgetall := func(key string) map[string]string {
		t.Helper()
		m, err := admin.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	wantTTL := func(key string, min, max time.Duration) {
		t.Helper()
		ttl, err := admin.PTTL(ctx, key).Result()
		if err != nil || ttl < min || ttl > max {
			t.Fatalf("PTTL %q = %v, %v; want within [%v, %v]", key, ttl, err, min, max)
		}
	}

	k := store.Key{Op: "op", ClientID: "c", RequestID: "r1", Scope: store.ScopeOrder, ScopeID: "o1"}
	b, err := r.Begin(ctx, k, "fp1", lease)
	if err != nil || b.State != store.Started {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	want := map[string]string{"state": "P", "token": b.Token, "fp": "fp1"}
	if diff := cmp.Diff(want, hgetall(store.RecordKey(k))); diff != "" {
		t.Fatalf("in-progress record (-want +got):\n%s", diff)
	}
	wantTTL(store.RecordKey(k), lease-time.Second, lease)
	wantTTL(store.ClaimKey(k), lease-time.Second, lease)
	want = map[string]string{"fp": "fp1", "e": "o:o1"}
	if diff := cmp.Diff(want, hgetall(store.ClaimKey(k))); diff != "" {
		t.Fatalf("claim (-want +got):\n%s", diff)
	}

	// A final order lives its retention, set in the commit script.
	o := domain.Order{RequestOrderID: "o1", Status: domain.Completed}
	if err := r.Commit(ctx, k, b.Token, []byte("resp"), time.Hour, store.PutOrderEffect{Order: o, Retention: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"state": "D", "fp": "fp1", "resp": "resp"}
	if diff := cmp.Diff(want, hgetall(store.RecordKey(k))); diff != "" {
		t.Fatalf("completed record (-want +got):\n%s", diff)
	}
	wantTTL(store.RecordKey(k), time.Hour-time.Second, time.Hour)
	wantTTL(store.ClaimKey(k), time.Hour-time.Second, time.Hour)
	if got := hgetall(store.OrderKey("o1")); got["ver"] != "1" || len(got) != 2 {
		t.Fatalf("order hash = %v, want fields json and ver 1", got)
	}
	wantTTL(store.OrderKey("o1"), 2*time.Hour-time.Second, 2*time.Hour)

	// An answer kept longer than the order keeps the order as long.
	commit := func(k store.Key, retention time.Duration, e store.Effect) {
		t.Helper()
		b, err := r.Begin(ctx, k, "fp-"+k.RequestID, lease)
		if err != nil || b.State != store.Started {
			t.Fatalf("Begin(%+v) = %+v, %v", k, b, err)
		}
		if err := r.Commit(ctx, k, b.Token, []byte("resp"), retention, e); err != nil {
			t.Fatal(err)
		}
	}
	k.RequestID = "r2"
	commit(k, 3*time.Hour, nil)
	wantTTL(store.OrderKey("o1"), 3*time.Hour-time.Second, 3*time.Hour)
	k.RequestID = "r3" // a shorter one changes nothing
	commit(k, time.Minute, nil)
	wantTTL(store.OrderKey("o1"), 3*time.Hour-time.Second, 3*time.Hour)

	// Retention 0: record, claim and the order never expire.
	k.RequestID = "r4"
	commit(k, 0, nil)
	wantTTL(store.RecordKey(k), -1, -1)
	wantTTL(store.ClaimKey(k), -1, -1)
	wantTTL(store.OrderKey("o1"), -1, -1)

	// A trade's audits: their retention after the last write.
	tk := store.Key{Op: "op", ClientID: "c", RequestID: "r5", Scope: store.ScopeTrade, ScopeID: "t1"}
	a := domain.Audit{TradeID: "t1", DeliveryBatchID: "b1", Status: domain.AuditAccept}
	commit(tk, time.Hour, store.RecordAuditEffect{Audit: a, Retention: 2 * time.Hour})
	wantTTL(store.AuditsKey("t1"), 2*time.Hour-time.Second, 2*time.Hour)

	// The operator's write: none while the order is not final.
	if _, err := r.PutOrderRetained(ctx, domain.Order{RequestOrderID: "o2", Status: domain.Ready}, time.Hour); err != nil {
		t.Fatal(err)
	}
	wantTTL(store.OrderKey("o2"), -1, -1)
	if _, err := r.PutOrderRetained(ctx, domain.Order{RequestOrderID: "o2", Status: domain.Rejected, Version: 1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	wantTTL(store.OrderKey("o2"), time.Hour-time.Second, time.Hour)
}

// A claim written by an earlier version is a string, the fingerprint
// alone: still honoured by Begin, its answer replayed, but Answer cannot
// find the record it does not name.
func TestRedisEarlierClaims(t *testing.T) {
	ctx := t.Context()
	r, admin, _ := newRedis(t)
	k := store.Key{Op: "op", ClientID: "c", RequestID: "r1", Scope: store.ScopeOrder, ScopeID: "o1"}
	if err := admin.Set(ctx, store.ClaimKey(k), "fp1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.HSet(ctx, store.RecordKey(k), "state", "D", "fp", "fp1", "resp", "old answer").Err(); err != nil {
		t.Fatal(err)
	}
	begin := func(k store.Key, fp string, want store.BeginState) store.Begun {
		t.Helper()
		b, err := r.Begin(ctx, k, fp, time.Minute)
		if err != nil || b.State != want {
			t.Fatalf("Begin(%+v, %q) = %+v, %v; want %v", k, fp, b, err, want)
		}
		return b
	}
	if b := begin(k, "fp1", store.Done); string(b.Response) != "old answer" {
		t.Fatalf("replayed %q", b.Response)
	}
	other := k
	other.ScopeID = "o2"
	begin(other, "fp2", store.Mismatch)
	if got, err := r.Answer(ctx, k.Op, k.ClientID, k.RequestID); !errors.Is(err, store.ErrNoAnswer) {
		t.Fatalf("Answer = %q, %v; want ErrNoAnswer", got, err)
	}
	if typ := admin.Type(ctx, store.ClaimKey(k)).Val(); typ != "string" {
		t.Fatalf("the earlier claim is a %s now", typ)
	}

	// A retry after a U answered by an earlier version: its claim, without
	// a record, lets the same body through.
	k.RequestID = "r2"
	if err := admin.Set(ctx, store.ClaimKey(k), "fp3", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	b := begin(k, "fp3", store.Started)
	if ttl := admin.PTTL(ctx, store.ClaimKey(k)).Val(); ttl < time.Minute-time.Second {
		t.Errorf("the earlier claim's PTTL %v after Begin, want a lease (%v)", ttl, time.Minute)
	}
	if err := r.Commit(ctx, k, b.Token, []byte("new"), time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	begin(k, "fp3", store.Done)
}

// After SCRIPT FLUSH (as after a restart) every script still runs: the
// pipelined EVALSHA falls back to EVAL.
func TestRedisScriptCacheFlushed(t *testing.T) {
	ctx := t.Context()
	r, admin, _ := newRedis(t)
	flush := func() {
		t.Helper()
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	k := store.Key{Op: "op", ClientID: "c", RequestID: "r1", Scope: store.ScopeTrade, ScopeID: "t1"}
	flush()
	b, err := r.Begin(ctx, k, "fp1", time.Minute)
	if err != nil || b.State != store.Started {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	flush()
	if err := r.Release(ctx, k, b.Token); err != nil {
		t.Fatal(err)
	}
	if b, err = r.Begin(ctx, k, "fp1", time.Minute); err != nil || b.State != store.Started {
		t.Fatalf("Begin after Release = %+v, %v", b, err)
	}
	flush()
	a := domain.Audit{TradeID: "t1", DeliveryBatchID: "b1", Status: domain.AuditAccept}
	if err := r.Commit(ctx, k, b.Token, []byte("ok"), time.Hour, store.RecordAuditEffect{Audit: a}); err != nil {
		t.Fatal(err)
	}
	flush()
	if _, err := r.PutOrder(ctx, domain.Order{RequestOrderID: "o1"}); err != nil {
		t.Fatal(err)
	}
}

// With the server gone the store answers errors (the caller says U), none
// of them a business outcome; after a restart it works again.
func TestRedisDown(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	r := store.NewRedis(redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialerRetries: 1}))
	t.Cleanup(func() { _ = r.Close() })
	k := store.Key{Op: "op", ClientID: "c", RequestID: "r1", Scope: store.ScopeOrder, ScopeID: "o1"}

	srv.Stop()
	if b, err := r.Begin(ctx, k, "fp1", time.Minute); err == nil {
		t.Fatalf("Begin with the server down = %+v, want an error", b)
	}
	if _, err := r.GetOrder(ctx, "o1"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetOrder with the server down: %v, want an infrastructure error", err)
	}
	if err := r.Ping(ctx); err == nil {
		t.Fatal("Ping with the server down succeeded")
	}

	srv.Restart()
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	if b, err := r.Begin(ctx, k, "fp1", time.Minute); err != nil || b.State != store.Started {
		t.Fatalf("Begin after restart = %+v, %v", b, err)
	}
}

// TestRedisBeginRefreshesAnEarlierClaim: a claim left by an attempt that
// answered U is given a lease again by the retry's Begin, so it cannot lapse
// before the retry commits; a claim kept forever stays so.
func TestRedisBeginRefreshesAnEarlierClaim(t *testing.T) {
	ctx := t.Context()
	r, admin, _ := newRedis(t)
	const lease = 30 * time.Second
	k := store.Key{Op: "op", ClientID: "c", RequestID: "r", Scope: store.ScopeOrder, ScopeID: "o"}
	b, err := r.Begin(ctx, k, "fp", lease)
	if err != nil || b.State != store.Started {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	if err := r.Release(ctx, k, b.Token); err != nil {
		t.Fatal(err)
	}
	admin.PExpire(ctx, store.ClaimKey(k), time.Second) // as if the lease had nearly run
	if b, err = r.Begin(ctx, k, "fp", lease); err != nil || b.State != store.Started {
		t.Fatalf("retry Begin = %+v, %v", b, err)
	}
	if ttl := admin.PTTL(ctx, store.ClaimKey(k)).Val(); ttl < lease-time.Second {
		t.Errorf("claim PTTL %v after the retry's Begin, want about %v", ttl, lease)
	}
	if err := r.Commit(ctx, k, b.Token, []byte("ok"), 0, nil); err != nil {
		t.Fatal(err)
	}
	other := k
	other.ScopeID = "o2"
	if b, err = r.Begin(ctx, other, "other", lease); err != nil || b.State != store.Mismatch {
		t.Fatalf("reuse for another order: %+v, %v", b, err)
	}
	if ttl := admin.PTTL(ctx, store.ClaimKey(k)).Val(); ttl != -1 {
		t.Errorf("claim kept forever now has PTTL %v", ttl)
	}
}
