package redistest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/tests/redistest"
)

func TestStartStopRestart(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	if !strings.HasPrefix(s.URL(), "redis://"+s.Addr()+"/") {
		t.Fatalf("URL %q does not name Addr %q", s.URL(), s.Addr())
	}
	// No retries: PING must fail at once while the server is down.
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Stop()
	s.Stop() // idempotent
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered after Stop")
	}

	addr := s.Addr()
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", s.Addr(), addr)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	// Started without persistence: the restart lost the data.
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after restart = %d, %v; want 0, nil", n, err)
	}
}

func TestExtraArgs(t *testing.T) {
	s := redistest.Start(t, "--maxmemory", "12345678")
	got, err := s.Client(t).ConfigGet(context.Background(), "maxmemory").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got["maxmemory"] != "12345678" {
		t.Fatalf("maxmemory = %q, want 12345678", got["maxmemory"])
	}
}

// A replica started by StartReplica receives the master's writes at once:
// WAIT counts it; frozen, it holds WAIT back until its timeout.
func TestStartReplica(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	c := master.Client(t)
	wait := func(timeout time.Duration) int64 {
		t.Helper()
		var w *redis.IntCmd
		// One connection: WAIT counts the writes of its own.
		if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "k", "v", 0)
			w = redis.NewIntCmd(ctx, "wait", 1, timeout.Milliseconds())
			return p.Process(ctx, w)
		}); err != nil {
			t.Fatal(err)
		}
		return w.Val()
	}
	if n := wait(5 * time.Second); n != 1 {
		t.Fatalf("WAIT 1 after a write = %d, want 1", n)
	}
	if got := replica.Client(t).Get(ctx, "k").Val(); got != "v" {
		t.Errorf("the replica has k = %q, want v", got)
	}
	replica.Pause()
	if n := wait(100 * time.Millisecond); n != 0 {
		t.Errorf("WAIT 1 with the replica frozen = %d, want 0", n)
	}
	replica.Resume()
	if n := wait(5 * time.Second); n != 1 {
		t.Errorf("WAIT 1 with the replica back = %d, want 1", n)
	}
}
