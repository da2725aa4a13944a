package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/impl/store/storetest"
	"github.com/orderhub/orderhub/tests/redistest"
)

// waitBound is the deadline the tests give a call whose WAIT falls short:
// it must come back within it, not when Redis' WAIT would (never, at 0).
const waitBound = 300 * time.Millisecond

// TestRedisReplicatedSuite runs the shared suite with MinReplicas(1) on a
// master with one replica: every behaviour holds when each commit waits.
func TestRedisReplicatedSuite(t *testing.T) {
	master := redistest.Start(t)
	redistest.StartReplica(t, master)
	admin := master.Client(t)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		if err := admin.FlushAll(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHALL: %v", err)
		}
		r := store.NewRedis(redis.NewClient(&redis.Options{Addr: master.Addr()}), store.MinReplicas(1))
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

// roundTrips counts a client's round trips: each command sent alone, and
// each pipeline.
type roundTrips struct{ n atomic.Int64 }

func (*roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// counted is a store over addr with minReplicas, and its round-trip count.
func counted(t *testing.T, addr string, minReplicas int) (*store.Redis, *roundTrips) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	rt := &roundTrips{}
	c.AddHook(rt)
	r := store.NewRedis(c, store.MinReplicas(minReplicas))
	t.Cleanup(func() { _ = r.Close() })
	return r, rt
}

// trips runs f and returns how many round trips it took.
func trips(rt *roundTrips, f func()) int64 {
	before := rt.n.Load()
	f()
	return rt.n.Load() - before
}

// within is a context ending after waitBound.
func within(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// TestRedisMinReplicas: with MinReplicas(1) an answer is given only once
// the replica has the record. With the replica frozen, the commit and then
// the replays answer ErrNotReplicated within the deadline, the record stays
// done (Release leaves it alone) and unconfirmed; once the replica is back
// the replay confirms it and answers, and the effect happened once. The
// round trips of each case are those the README gives.
func TestRedisMinReplicas(t *testing.T) {
	ctx := t.Context()
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	admin, onReplica := master.Client(t), replica.Client(t)
	r, rt := counted(t, master.Addr(), 1)
	o := domain.Order{RequestOrderID: "o1", Status: domain.Completed}
	k := store.Key{Op: "op", ClientID: "c", RequestID: "r1", Scope: store.ScopeOrder, ScopeID: "o1"}
	begin := func(ctx context.Context, k store.Key) (store.Begun, error) {
		return r.Begin(ctx, k, "fp-"+k.RequestID, time.Minute)
	}
	unconfirmed := func(c *redis.Client, k store.Key) string {
		t.Helper()
		v, err := c.HGet(ctx, store.RecordKey(k), "unconfirmed").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		return v
	}

	// The scripts cached first (EVALSHA's NOSCRIPT costs a round trip).
	warm := store.Key{Op: "op", ClientID: "c", RequestID: "r0", Scope: store.ScopeTrade, ScopeID: "t0"}
	b, err := begin(ctx, warm)
	if err != nil || b.State != store.Started {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	if err := r.Commit(ctx, warm, b.Token, []byte("S"), time.Hour, nil); err != nil {
		t.Fatal(err)
	}

	// Replicated: two round trips to commit (script and WAIT, then the
	// flag cleared), one to replay; the replica has the record and effect.
	b, err = begin(ctx, k)
	if err != nil || b.State != store.Started {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	if n := trips(rt, func() { err = r.Commit(ctx, k, b.Token, []byte("S"), time.Hour, store.PutOrderEffect{Order: o}) }); err != nil || n != 2 {
		t.Fatalf("Commit = %v in %d round trips; want nil in 2", err, n)
	}
	if v := unconfirmed(admin, k); v != "" {
		t.Errorf("confirmed record: unconfirmed = %q, want the field gone", v)
	}
	if got := onReplica.HGet(ctx, store.RecordKey(k), "resp").Val(); got != "S" {
		t.Errorf("the replica's record answers %q after the commit, want S", got)
	}
	if got := onReplica.HGet(ctx, store.OrderKey("o1"), "ver").Val(); got != "1" {
		t.Errorf("the replica's order has version %q after the commit, want 1", got)
	}
	if n := trips(rt, func() { b, err = begin(ctx, k) }); err != nil || b.State != store.Done || string(b.Response) != "S" || n != 1 {
		t.Fatalf("replay = %+v, %v in %d round trips; want Done S in 1", b, err, n)
	}

	// The replica frozen: the commit is written on the master but answered
	// ErrNotReplicated, within the deadline, in one round trip.
	if err := redistest.Poll(5*time.Second, func() error {
		// The clear of r1's flag reached the replica: nothing is pending
		// that the frozen replica could be blamed for.
		if v := unconfirmed(onReplica, k); v != "" {
			return errors.New("the replica has not yet seen r1 confirmed")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	replica.Pause()
	k2 := k
	k2.RequestID, k2.ScopeID = "r2", "o2"
	o2 := o
	o2.RequestOrderID = "o2"
	if b, err = begin(ctx, k2); err != nil || b.State != store.Started {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	start := time.Now()
	n := trips(rt, func() {
		err = r.Commit(within(t), k2, b.Token, []byte("S2"), time.Hour, store.PutOrderEffect{Order: o2})
	})
	if took := time.Since(start); !errors.Is(err, store.ErrNotReplicated) || took > waitBound || n != 1 {
		t.Fatalf("Commit with the replica frozen = %v after %v in %d round trips; want ErrNotReplicated within %v in 1", err, took, n, waitBound)
	}
	if err := r.Release(ctx, k2, b.Token); err != nil {
		t.Fatal(err)
	}
	if got := admin.HGet(ctx, store.RecordKey(k2), "state").Val(); got != "D" || unconfirmed(admin, k2) != "1" {
		t.Fatalf("after the short commit and Release: state %q, unconfirmed %q; want D, 1", got, unconfirmed(admin, k2))
	}
	// Its replay is confirmed first, and falls short too: two round trips.
	for range 2 {
		start = time.Now()
		n = trips(rt, func() { b, err = begin(within(t), k2) })
		if took := time.Since(start); !errors.Is(err, store.ErrNotReplicated) || took > waitBound || n != 2 {
			t.Fatalf("replay with the replica frozen = %+v, %v after %v in %d round trips; want ErrNotReplicated within %v in 2", b, err, took, n, waitBound)
		}
	}
	// A store at MinReplicas 0 replays it as ever, in one round trip.
	r0, rt0 := counted(t, master.Addr(), 0)
	if _, err := r0.Begin(ctx, warm, "fp-r0", time.Minute); err != nil { // its connections set up
		t.Fatal(err)
	}
	var b0 store.Begun
	if n := trips(rt0, func() { b0, err = r0.Begin(ctx, k2, "fp-r2", time.Minute) }); err != nil || b0.State != store.Done || n != 1 {
		t.Fatalf("replay at MinReplicas 0 = %+v, %v in %d round trips; want Done in 1", b0, err, n)
	}

	// The replica back: the replay confirms the record (its write and WAIT,
	// then the flag cleared: three round trips) and answers it.
	replica.Resume()
	if n := trips(rt, func() { b, err = begin(ctx, k2) }); err != nil || b.State != store.Done || string(b.Response) != "S2" || n != 3 {
		t.Fatalf("replay with the replica back = %+v, %v in %d round trips; want Done S2 in 3", b, err, n)
	}
	if v := unconfirmed(admin, k2); v != "" {
		t.Errorf("confirmed by its replay: unconfirmed = %q, want the field gone", v)
	}
	if got := onReplica.HGet(ctx, store.RecordKey(k2), "resp").Val(); got != "S2" {
		t.Errorf("the replica's record answers %q after the confirmation, want S2", got)
	}
	if n := trips(rt, func() { b, err = begin(ctx, k2) }); err != nil || b.State != store.Done || n != 1 {
		t.Fatalf("the next replay = %+v, %v in %d round trips; want Done in 1", b, err, n)
	}
	if got, err := r.GetOrder(ctx, "o2"); err != nil || got.Version != 1 {
		t.Fatalf("order o2 = %+v, %v; want written once (version 1)", got, err)
	}
}

// TestRedisMinReplicasGone: a record that vanished between Begin's read
// and its confirmation (a failover to a replica without it) is not
// replayed; and a client that is neither one node nor a cluster is told so.
func TestRedisMinReplicasGone(t *testing.T) {
	ctx := t.Context()
	master := redistest.Start(t)
	redistest.StartReplica(t, master)
	admin := master.Client(t)
	k := store.Key{Op: "op", ClientID: "c", RequestID: "r1", Scope: store.ScopeTrade, ScopeID: "t1"}
	// An unconfirmed record as a short commit leaves it, deleted the moment
	// Begin has read it.
	if err := admin.HSet(ctx, store.RecordKey(k), "state", "D", "fp", "fp", "resp", "S", "unconfirmed", "1").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: master.Addr()})
	del := &deleteAfterNext{admin: admin, key: store.RecordKey(k)}
	c.AddHook(del)
	r := store.NewRedis(c, store.MinReplicas(1))
	t.Cleanup(func() { _ = r.Close() })
	// Begin's scripts cached first, so that its first pipeline reads the
	// record.
	warm := store.Key{Op: "op", ClientID: "c", RequestID: "r0", Scope: store.ScopeTrade, ScopeID: "t0"}
	if _, err := r.Begin(ctx, warm, "fp", time.Minute); err != nil {
		t.Fatal(err)
	}
	del.armed.Store(true)
	if b, err := r.Begin(ctx, k, "fp", time.Minute); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("replay of a record gone before its confirmation = %+v, %v; want ErrNotReplicated", b, err)
	}

	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": master.Addr()}})
	rr := store.NewRedis(ring, store.MinReplicas(1))
	t.Cleanup(func() { _ = rr.Close() })
	k.RequestID = "r2"
	b, err := rr.Begin(ctx, k, "fp", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := rr.Commit(ctx, k, b.Token, []byte("S"), time.Hour, nil); err == nil || errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("Commit over a Ring = %v, want an error naming the client", err)
	}
}

// deleteAfterNext deletes key once the next pipeline after it is armed
// (Begin's) is done.
type deleteAfterNext struct {
	admin *redis.Client
	key   string
	armed atomic.Bool
}

func (*deleteAfterNext) DialHook(next redis.DialHook) redis.DialHook { return next }

func (*deleteAfterNext) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *deleteAfterNext) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if h.armed.CompareAndSwap(true, false) {
			h.admin.Del(ctx, h.key)
		}
		return err
	}
}

// TestRedisMinReplicasCluster: on a Cluster the WAIT goes to the master of
// the record's slot, on the commit's connection. Its replica frozen, that
// shard's commits fall short while another shard's are confirmed; its
// replica back, the replay confirms and answers.
func TestRedisMinReplicasCluster(t *testing.T) {
	ctx := t.Context()
	// A short node timeout: the nodes gossip more often, and the cluster
	// is ready in half the time. The replica is frozen far less than it.
	c := redistest.StartReplicatedCluster(t, "--cluster-node-timeout", "2000")
	owners, err := c.SlotMasters()
	if err != nil {
		t.Fatal(err)
	}
	r := store.NewRedis(redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()}), store.MinReplicas(1))
	t.Cleanup(func() { _ = r.Close() })
	admin := c.Client(t)
	// The slot map and the command table read now: a client reading either
	// first from the frozen replica would wait for its read timeout.
	if _, err := r.GetOrder(ctx, "warm-up"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetOrder = %v, want ErrNotFound", err)
	}
	if err := admin.Get(ctx, "warm-up").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET = %v, want redis.Nil", err)
	}

	// Two trades on different masters.
	key := func(trade string) store.Key {
		return store.Key{Op: "op", ClientID: "c", RequestID: "r-" + trade, Scope: store.ScopeTrade, ScopeID: trade}
	}
	frozen, other := "t-0", ""
	victim := owners[redistest.Slot(store.AuditsKey(frozen))]
	for i := 1; other == ""; i++ {
		if id := fmt.Sprintf("t-%d", i); owners[redistest.Slot(store.AuditsKey(id))] != victim {
			other = id
		}
	}
	replicas, err := c.ReplicasOf(victim)
	if err != nil || len(replicas) != 1 {
		t.Fatalf("ReplicasOf(%s) = %v, %v; want one", victim, replicas, err)
	}
	commit := func(ctx context.Context, trade string) error {
		t.Helper()
		k := key(trade)
		b, err := r.Begin(ctx, k, "fp", time.Minute)
		if err != nil || b.State != store.Started {
			t.Fatalf("Begin(%s) = %+v, %v", trade, b, err)
		}
		a := domain.Audit{TradeID: trade, DeliveryBatchID: "b1", Status: domain.AuditAccept, RequestID: k.RequestID}
		return r.Commit(ctx, k, b.Token, []byte("S-"+trade), time.Hour, store.RecordAuditEffect{Audit: a})
	}

	if err := c.Pause(replicas[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Resume(replicas[0]) })
	start := time.Now()
	if err := commit(within(t), frozen); !errors.Is(err, store.ErrNotReplicated) || time.Since(start) > waitBound {
		t.Fatalf("commit on %s, its replica frozen: %v after %v; want ErrNotReplicated within %v", victim, err, time.Since(start), waitBound)
	}
	// A replica starts receiving writes up to a second after it synchronised.
	long, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := commit(long, other); err != nil {
		t.Fatalf("commit on another master: %v", err)
	}
	if v := admin.HGet(ctx, store.RecordKey(key(other)), "unconfirmed").Val(); v != "" {
		t.Errorf("the other shard's record: unconfirmed = %q, want the field gone", v)
	}
	// The claim, in the requestId's own slot, lives as long as the record.
	if ttl := admin.PTTL(ctx, store.ClaimKey(key(frozen))).Val(); ttl < 59*time.Minute {
		t.Errorf("claim PTTL %v after the short commit, want the retention (1h)", ttl)
	}
	if b, err := r.Begin(within(t), key(frozen), "fp", time.Minute); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("replay, the replica still frozen = %+v, %v; want ErrNotReplicated", b, err)
	}

	if err := c.Resume(replicas[0]); err != nil {
		t.Fatal(err)
	}
	b, err := r.Begin(ctx, key(frozen), "fp", time.Minute)
	if err != nil || b.State != store.Done || string(b.Response) != "S-"+frozen {
		t.Fatalf("replay, the replica back = %+v, %v; want Done", b, err)
	}
	// READONLY on each connection: a replica serves its slots' reads then.
	onReplica := redis.NewClient(&redis.Options{Addr: replicas[0], OnConnect: func(ctx context.Context, cn *redis.Conn) error {
		return cn.ReadOnly(ctx).Err()
	}})
	defer onReplica.Close()
	if got, err := onReplica.HGet(ctx, store.RecordKey(key(frozen)), "resp").Result(); err != nil || got != "S-"+frozen {
		t.Errorf("the replica's record after the confirmation: %q, %v", got, err)
	}
}
