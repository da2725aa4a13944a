package redistest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/tests/redistest"
)

func TestCluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, "--maxmemory", "12345678")
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3 nodes", addrs)
	}

	// URL is go-redis's cluster URL under the redis+cluster scheme.
	u := c.URL()
	rest, ok := strings.CutPrefix(u, "redis+cluster://")
	if !ok {
		t.Fatalf("URL %q: want the redis+cluster scheme", u)
	}
	opt, err := redis.ParseClusterURL("redis://" + rest)
	if err != nil || !slices.Equal(opt.Addrs, addrs) {
		t.Fatalf("URL %q parses to %v, %v; want Addrs %v", u, opt, err, addrs)
	}

	for _, addr := range addrs {
		n := redis.NewClient(&redis.Options{Addr: addr})
		defer n.Close()
		info, err := n.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Errorf("%s: CLUSTER INFO = %q, %v", addr, info, err)
		}
		if got, err := n.ConfigGet(ctx, "maxmemory").Result(); err != nil || got["maxmemory"] != "12345678" {
			t.Errorf("%s: maxmemory = %v, %v; want the extra argument applied", addr, got, err)
		}
	}

	cc := c.Client(t)
	dbsizes := func() []int64 {
		t.Helper()
		var sizes []int64
		for _, addr := range addrs {
			n := redis.NewClient(&redis.Options{Addr: addr})
			size, err := n.DBSize(ctx).Result()
			_ = n.Close()
			if err != nil {
				t.Fatalf("%s: DBSIZE: %v", addr, err)
			}
			sizes = append(sizes, size)
		}
		return sizes
	}
	for i := range 60 {
		if err := cc.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	if sizes := dbsizes(); slices.Contains(sizes, 0) {
		t.Errorf("keys per node %v: want the slots spread over every node", sizes)
	}
	// The property the stores rely on: one script's keys must share a slot.
	err = cc.Eval(ctx, "return redis.call('MGET', KEYS[1], KEYS[2])", []string{"k0", "k1"}).Err()
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("script over keys of two slots: %v, want CROSSSLOT", err)
	}
	if err := c.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if sizes := dbsizes(); slices.ContainsFunc(sizes, func(n int64) bool { return n != 0 }) {
		t.Errorf("keys per node after FlushAll: %v", sizes)
	}

	if err := cc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	c.Stop() // idempotent
	if c.Running() {
		t.Error("Running after Stop")
	}
	for _, addr := range addrs {
		n := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
		if err := n.Ping(ctx).Err(); err == nil {
			t.Errorf("%s answered PING after Stop", addr)
		}
		_ = n.Close()
	}

	if err := c.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if !c.Running() || !slices.Equal(c.Addrs(), addrs) {
		t.Fatalf("after Restart: running %v on %v, want %v", c.Running(), c.Addrs(), addrs)
	}
	// The same cluster, still serving every slot, without the data.
	if n, err := cc.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS k after Restart = %d, %v; want 0, nil", n, err)
	}
	for i := range 60 {
		if err := cc.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatalf("SET k%d after Restart: %v", i, err)
		}
	}
}

// Without redis-cli there is no cluster, and the message says what to run.
func TestClusterNeedsRedisCLI(t *testing.T) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: run scripts/ensure-redis.sh")
	}
	bin := t.TempDir()
	if err := os.Symlink(server, filepath.Join(bin, "redis-server")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	c, err := redistest.LaunchCluster(t.TempDir())
	if err == nil {
		c.Stop()
		t.Fatal("launched a cluster without redis-cli")
	}
	if !strings.Contains(err.Error(), "redis-cli not found: run scripts/ensure-redis.sh") {
		t.Errorf("error %q does not say to run scripts/ensure-redis.sh", err)
	}
}

// Slot is Redis's own: CLUSTER KEYSLOT agrees, hash tags included.
func TestSlot(t *testing.T) {
	admin := redistest.Start(t, "--cluster-enabled", "yes").Client(t)
	for _, key := range []string{"", "k", "k0", "orderhub:audits:{t:T-1}", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "{}", "x{y"} {
		want, err := admin.ClusterKeySlot(context.Background(), key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", key, err)
		}
		if got := redistest.Slot(key); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", key, got, want)
		}
	}
}

// A replicated cluster fails over when a master is killed or frozen, and
// WaitPromotion sees the replica take its slots.
func TestReplicatedClusterFailover(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartReplicatedCluster(t, "--cluster-node-timeout", "2000")
	if n := len(c.Addrs()); n != 6 {
		t.Fatalf("Addrs = %v, want 6 nodes", c.Addrs())
	}
	masters, err := c.Masters()
	if err != nil || len(masters) != 3 {
		t.Fatalf("Masters = %v, %v; want 3", masters, err)
	}
	cc := c.Client(t)
	if err := cc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	owner, err := c.MasterOf("k")
	if err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: owner})
	defer direct.Close()
	if got, err := direct.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k on MasterOf's %s = %q, %v", owner, got, err)
	}
	if err := c.FlushAll(ctx); err != nil {
		t.Fatalf("FlushAll with replicas: %v", err)
	}

	// The replica promoted after the kill has none of its own: the pause
	// takes another shard's master, "k" moved to its slot.
	owners, err := c.SlotMasters()
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"k", ""}
	for i := 0; keys[1] == ""; i++ {
		if k := fmt.Sprintf("k%d", i); owners[redistest.Slot(k)] != owners[redistest.Slot("k")] {
			keys[1] = k
		}
	}
	for i, tc := range []struct {
		how     string
		breakIt func(addr string) error
	}{
		{"kill", c.Kill},
		{"pause", c.Pause},
	} {
		key := keys[i]
		victim, err := c.MasterOf(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.breakIt(victim); err != nil {
			t.Fatalf("%s %s: %v", tc.how, victim, err)
		}
		start := time.Now()
		at, err := c.WaitPromotion(victim, 30*time.Second)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.how, victim, err)
		}
		t.Logf("%s %s: promoted after %v", tc.how, victim, at.Sub(start).Round(time.Millisecond))
		after, err := c.Masters()
		if err != nil || len(after) != 3 || slices.Contains(after, victim) {
			t.Fatalf("%s: Masters after promotion = %v, %v; want 3 without %s", tc.how, after, err, victim)
		}
		// The slot's new master serves it (asked directly: a cluster client
		// would go on asking the old one until it reloads the slot map).
		owner, err := c.MasterOf(key)
		if err != nil || owner == victim {
			t.Fatalf("%s: MasterOf(%s) after promotion = %s, %v", tc.how, key, owner, err)
		}
		n := redis.NewClient(&redis.Options{Addr: owner})
		err = n.Set(ctx, key, tc.how, 0).Err()
		_ = n.Close()
		if err != nil {
			t.Fatalf("%s: SET k on %s after promotion: %v", tc.how, owner, err)
		}
	}
	if c.Running() {
		t.Error("Running with a node killed")
	}

	// Both come back, as replicas of the masters that replaced them.
	paused, killed := owners[redistest.Slot(keys[1])], owners[redistest.Slot(keys[0])]
	if err := c.Resume(paused); err != nil {
		t.Fatal(err)
	}
	if err := c.Revive(killed); err != nil {
		t.Fatalf("Revive(%s): %v", killed, err)
	}
	if !c.Running() {
		t.Error("not Running after Revive")
	}
	if err := c.Revive(killed); err == nil {
		t.Errorf("Revive(%s) of a running node succeeded", killed)
	}
	successor, err := c.MasterOf(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if replicas, err := c.ReplicasOf(successor); err != nil || !slices.Equal(replicas, []string{killed}) {
		t.Errorf("ReplicasOf(%s) = %v, %v; want [%s], its revived predecessor", successor, replicas, err, killed)
	}
}
