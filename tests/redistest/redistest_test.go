package redistest_test

import (
	"context"
	"strings"
	"testing"

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
