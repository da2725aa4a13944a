package ratelimit

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/tests/redistest"
)

// lim parses a limit a test states, failing on a bad one.
func lim(t *testing.T, s string) Limit {
	t.Helper()
	l, err := ParseLimit(s)
	if err != nil {
		t.Fatalf("ParseLimit(%q): %v", s, err)
	}
	return l
}

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Limit
	}{
		{"", Limit{}},
		{"100/s", Limit{Rate: 100, Period: time.Second, Burst: 100}},
		{"6000/m", Limit{Rate: 6000, Period: time.Minute, Burst: 6000}},
		{"1/h,burst=5", Limit{Rate: 1, Period: time.Hour, Burst: 5}},
		{"100/s,burst=200", Limit{Rate: 100, Period: time.Second, Burst: 200}},
		{"1000000/s", Limit{Rate: 1_000_000, Period: time.Second, Burst: 1_000_000}},
	} {
		got, err := ParseLimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if tc.in != "" && got.String() != tc.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	for _, bad := range []string{
		"100", "100/", "100/d", "100/sec", "/s", "0/s", "-1/s", "x/s", " 100/s", "1.5/s", "1000001/s",
		"100/s,", "100/s,200", "100/s,burst=", "100/s,burst=0", "100/s,burst=-1", "100/s,burst=1000001", "100/s,burst=2,x",
	} {
		if l, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) = %+v, want an error", bad, l)
		}
	}
}

func TestDecisionErr(t *testing.T) {
	if err := (Decision{Allowed: true}).Err(); err != nil {
		t.Errorf("allowed: %v", err)
	}
	err := Decision{Exceeded: Global, RetryAfter: 1500 * time.Millisecond}.Err()
	if !errors.Is(err, ErrLimited) || !strings.Contains(err.Error(), "global") || !strings.Contains(err.Error(), "1.5s") {
		t.Errorf("refused: %v", err)
	}
}

// backend makes, for one subtest, a constructor of limiters over one empty
// state: the limiters of a subtest share their counts, as orderhub
// instances over one Redis do.
type backend func(t *testing.T) func(Limits) Limiter

func TestMemory(t *testing.T) {
	behaviour(t, func(t *testing.T) func(Limits) Limiter {
		st := NewMemory(Limits{}, nil).st
		return func(l Limits) Limiter { return &Memory{limits: l, now: time.Now, st: st} }
	})
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	c := srv.Client(t)
	behaviour(t, func(t *testing.T) func(Limits) Limiter {
		if err := admin.FlushAll(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHALL: %v", err)
		}
		return func(l Limits) Limiter { return NewRedis(c, l) }
	})
}

// TestRedisCluster runs the same behaviour through a cluster client on a
// one-node Redis Cluster: a script over keys of different slots would fail
// there with CROSSSLOT.
func TestRedisCluster(t *testing.T) {
	srv, admin := startCluster(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr()}})
	t.Cleanup(func() { _ = c.Close() })
	behaviour(t, func(t *testing.T) func(Limits) Limiter {
		if err := admin.FlushAll(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHALL: %v", err)
		}
		return func(l Limits) Limiter { return NewRedis(c, l) }
	})
	// Whatever a Client-Id holds, its key shares the global key's slot.
	for _, id := range []string{"c", "{x}", "a:b}{", "}", ""} {
		got, err := admin.ClusterKeySlot(t.Context(), clientKey(id)).Result()
		want, err2 := admin.ClusterKeySlot(t.Context(), globalKey).Result()
		if err != nil || err2 != nil || got != want {
			t.Errorf("client %q: slot %d (%v), global key's %d (%v)", id, got, err, want, err2)
		}
	}
}

// startCluster starts a redis-server in cluster mode serving every slot
// itself, and waits until the cluster state is ok.
func startCluster(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t, "--cluster-enabled", "yes")
	admin := srv.Client(t)
	if err := admin.Do(t.Context(), "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := admin.ClusterInfo(t.Context()).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return srv, admin
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster state not ok within 10s: %v\n%s", err, info)
		}
		<-tick.C
	}
}

// behaviour is the suite both implementations pass. Its limits are per hour
// (an interval of minutes), so no outcome depends on how fast the test runs.
func behaviour(t *testing.T, fresh backend) {
	type step struct {
		client string
		want   Scope // "" allowed, else the limit that must refuse
	}
	// run sends the steps through l in order.
	run := func(t *testing.T, l Limiter, steps ...step) {
		t.Helper()
		for i, s := range steps {
			d, err := l.Allow(t.Context(), s.client)
			if err != nil {
				t.Fatalf("step %d (%s): %v", i, s.client, err)
			}
			if d.Allowed != (s.want == "") || d.Exceeded != s.want {
				t.Errorf("step %d (%s): %+v, want refused by %q", i, s.client, d, s.want)
			}
			if d.Allowed != (d.RetryAfter == 0) {
				t.Errorf("step %d (%s): RetryAfter %s with Allowed %v", i, s.client, d.RetryAfter, d.Allowed)
			}
		}
	}
	ok := func(client string, n int) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = step{client, ""}
		}
		return s
	}
	refused := func(client string, by Scope, n int) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = step{client, by}
		}
		return s
	}
	seq := func(parts ...[]step) []step {
		var all []step
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}

	t.Run("a client gets its burst, then is refused", func(t *testing.T) {
		l := fresh(t)(Limits{PerClient: lim(t, "3/h")})
		run(t, l, seq(ok("a", 3), refused("a", PerClient, 1))...)
		// The refused call was not counted: the wait does not grow.
		d1, err1 := l.Allow(t.Context(), "a")
		d2, err2 := l.Allow(t.Context(), "a")
		interval := 20 * time.Minute
		for _, d := range []Decision{d1, d2} {
			if d.Allowed || d.RetryAfter > interval || d.RetryAfter < interval-time.Minute {
				t.Errorf("refused call: %+v, want RetryAfter within a minute below %s (%v %v)", d, interval, err1, err2)
			}
		}
		if d2.RetryAfter > d1.RetryAfter {
			t.Errorf("RetryAfter grew from %s to %s: refused calls were counted", d1.RetryAfter, d2.RetryAfter)
		}
	})
	t.Run("a burst above the rate", func(t *testing.T) {
		l := fresh(t)(Limits{PerClient: lim(t, "1/h,burst=3")})
		run(t, l, seq(ok("a", 3), refused("a", PerClient, 1))...)
		d, err := l.Allow(t.Context(), "a")
		if err != nil || d.RetryAfter <= 59*time.Minute || d.RetryAfter > time.Hour {
			t.Errorf("RetryAfter %s (%v), want just under 1h: one call's interval", d.RetryAfter, err)
		}
	})
	t.Run("clients do not share their limits", func(t *testing.T) {
		l := fresh(t)(Limits{PerClient: lim(t, "2/h")})
		run(t, l, seq(ok("a", 2), refused("a", PerClient, 2), ok("b", 2), refused("b", PerClient, 1))...)
	})
	t.Run("the global ceiling refuses everyone", func(t *testing.T) {
		l := fresh(t)(Limits{PerClient: lim(t, "3/h"), Global: lim(t, "4/h")})
		run(t, l, seq(ok("a", 3), ok("b", 1), refused("b", Global, 1), refused("c", Global, 2),
			// Both refuse a: its own limit is the one named.
			refused("a", PerClient, 1))...)
	})
	t.Run("a global limit alone", func(t *testing.T) {
		l := fresh(t)(Limits{Global: lim(t, "2/h")})
		run(t, l, ok("a", 1)[0], ok("b", 1)[0], step{"c", Global}, step{"a", Global})
	})
	t.Run("a call refused by its client's limit spends no global quota", func(t *testing.T) {
		l := fresh(t)(Limits{PerClient: lim(t, "1/h"), Global: lim(t, "3/h")})
		run(t, l, seq(ok("a", 1), refused("a", PerClient, 5), ok("b", 1), ok("c", 1), refused("d", Global, 1))...)
	})
	t.Run("a call refused by the global limit spends none of its client's", func(t *testing.T) {
		limiter := fresh(t)
		both := limiter(Limits{PerClient: lim(t, "2/h"), Global: lim(t, "1/h")})
		run(t, both, seq(ok("a", 1), refused("b", Global, 3))...)
		// Another instance without the ceiling sees b's full quota.
		own := limiter(Limits{PerClient: lim(t, "2/h")})
		run(t, own, seq(ok("b", 2), refused("b", PerClient, 1))...)
	})
	t.Run("instances share the counts", func(t *testing.T) {
		limiter := fresh(t)
		limits := Limits{PerClient: lim(t, "3/h"), Global: lim(t, "5/h")}
		one, two := limiter(limits), limiter(limits)
		run(t, one, ok("a", 2)...)
		run(t, two, seq(ok("a", 1), refused("a", PerClient, 1), ok("b", 2))...)
		run(t, one, refused("c", Global, 1)...)
	})
	t.Run("no limits allow everything", func(t *testing.T) {
		run(t, fresh(t)(Limits{}), ok("a", 50)...)
	})
	t.Run("concurrent calls over two instances get exactly the burst", func(t *testing.T) {
		limiter := fresh(t)
		limits := Limits{PerClient: lim(t, "30/h"), Global: lim(t, "40/h")}
		instances := []Limiter{limiter(limits), limiter(limits)}
		var allowed [2]atomic.Int64 // by client
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 20 {
					d, err := instances[g%2].Allow(t.Context(), []string{"a", "b"}[i%2])
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed[i%2].Add(1)
					}
				}
			})
		}
		wg.Wait()
		// 80 calls each: a and b both reach their 30 only if the global 40
		// is not spent first; together they get exactly 40.
		a, b := allowed[0].Load(), allowed[1].Load()
		if a+b != 40 || a > 30 || b > 30 {
			t.Errorf("allowed a %d, b %d; want 40 in all, at most 30 each", a, b)
		}
	})
}

// TestMemoryRefills drives the clock: the interval after a burst, one call
// comes back, and a quiet period refills the whole burst.
func TestMemoryRefills(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m := NewMemory(Limits{PerClient: lim(t, "2/m"), Global: lim(t, "10/m")}, clock)
	allow := func(want bool, retryAfter time.Duration) {
		t.Helper()
		d, err := m.Allow(t.Context(), "a")
		if err != nil || d.Allowed != want || d.RetryAfter != retryAfter {
			t.Errorf("at %s: %+v (%v), want allowed %v, RetryAfter %s", now.Format(time.TimeOnly), d, err, want, retryAfter)
		}
	}
	allow(true, 0)
	allow(true, 0)
	allow(false, 30*time.Second)
	now = now.Add(10 * time.Second)
	allow(false, 20*time.Second)
	now = now.Add(20*time.Second - time.Microsecond)
	allow(false, time.Microsecond)
	now = now.Add(time.Microsecond)
	allow(true, 0)
	allow(false, 30*time.Second)
	now = now.Add(time.Hour)
	allow(true, 0)
	allow(true, 0)
	allow(false, 30*time.Second)
}

// TestMemoryForgetsIdleCallers: entries whose limit is full again are
// dropped as the map grows, as Redis expires their keys.
func TestMemoryForgetsIdleCallers(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemory(Limits{PerClient: lim(t, "1/s")}, func() time.Time { return now })
	for i := range 1000 {
		if _, err := m.Allow(t.Context(), fmt.Sprint("old-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.st.tat); n != 1000 {
		t.Fatalf("%d entries after 1000 callers within their interval, want 1000", n)
	}
	now = now.Add(time.Second)
	for i := range 100 {
		if _, err := m.Allow(t.Context(), fmt.Sprint("new-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.st.tat); n != 100 {
		t.Errorf("%d entries once the old callers' limits were full again, want the 100 new ones", n)
	}
}

// TestRedisKeys: the keys are orderhub's, hold the theoretical arrival time
// in microseconds, and expire when the limit is full again.
func TestRedisKeys(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	r := NewRedis(c, Limits{PerClient: lim(t, "3/h"), Global: lim(t, "6/h")})
	before := time.Now()
	if d, err := r.Allow(t.Context(), "c-1"); err != nil || !d.Allowed {
		t.Fatalf("Allow: %+v %v", d, err)
	}
	keys, err := c.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"orderhub:rate:{rate}:client:c-1": 20 * time.Minute, "orderhub:rate:{rate}:global": 10 * time.Minute}
	if len(keys) != len(want) {
		t.Errorf("keys %q, want those of %v", keys, want)
	}
	for key, interval := range want {
		tat, err := c.Get(t.Context(), key).Int64()
		if err != nil {
			t.Errorf("GET %s: %v", key, err)
			continue
		}
		if at := time.UnixMicro(tat); at.Before(before.Add(interval-time.Second)) || at.After(time.Now().Add(interval+time.Second)) {
			t.Errorf("%s holds %s, want about now + %s", key, at, interval)
		}
		ttl, err := c.PTTL(t.Context(), key).Result()
		if err != nil || ttl <= interval-time.Minute || ttl > interval {
			t.Errorf("%s expires in %s (%v), want just under %s", key, ttl, err, interval)
		}
	}
	// No limits: no Redis call at all.
	srv.Stop()
	if d, err := NewRedis(c, Limits{}).Allow(t.Context(), "c-1"); err != nil || !d.Allowed {
		t.Errorf("no limits with Redis down: %+v %v", d, err)
	}
}

// TestRedisDown: an unreachable Redis is an error, never a decision: the
// caller answers U and the partner retries.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	r := NewRedis(c, Limits{PerClient: lim(t, "3/h")})
	if _, err := r.Allow(t.Context(), "a"); err != nil {
		t.Fatalf("Redis up: %v", err)
	}
	srv.Stop()
	d, err := r.Allow(t.Context(), "a")
	if err == nil || errors.Is(err, ErrLimited) || d.Allowed {
		t.Errorf("Redis down: %+v, %v; want an error that is not ErrLimited", d, err)
	}
}
