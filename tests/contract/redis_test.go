package contract

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/tests/redistest"
)

// redisModeVar chooses the Redis the suite runs against: unset or "single",
// a redis-server per env; "cluster", a three-master Redis Cluster per env,
// taken from a pool (make test runs both).
const redisModeVar = "ORDERHUB_TEST_REDIS"

// clusters is the pool of cluster mode, nil in single mode. TestMain sets
// it before any test runs and empties it after the last.
var clusters *clusterPool

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	switch mode := os.Getenv(redisModeVar); mode {
	case "", "single":
		return m.Run()
	case "cluster":
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: want single or cluster\n", redisModeVar, mode)
		return 2
	}
	dir, err := os.MkdirTemp("", "orderhub-contract-clusters-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	clusters = newClusterPool(dir)
	defer clusters.stop() // before RemoveAll: deferred calls run last first
	// Ready before the first tests need them: two plain clusters (while one
	// restarts after a fault test, the other serves) and a durable one.
	var durable envConfig
	withDurableRedis()(&durable)
	clusters.prepare(nil)
	clusters.prepare(nil)
	clusters.prepare(durable.redisArgs)
	return m.Run()
}

// parallel lets t run beside its siblings when each test starts a
// redis-server of its own; clusters are pooled and take seconds to launch,
// so on clusters tests take their turns.
func parallel(t *testing.T) {
	if clusters == nil {
		t.Parallel()
	}
}

// clusterMode reports whether the suite runs on Redis Clusters.
func clusterMode() bool { return clusters != nil }

// redisProcess is the Redis behind an env: fault tests stop and restart
// it, and some inspect it through a client of their own.
type redisProcess interface {
	Stop()
	Restart()
	Client(t testing.TB) redis.UniversalClient
}

// singleRedis is a redis-server as a redisProcess.
type singleRedis struct{ *redistest.Server }

func (s singleRedis) Client(t testing.TB) redis.UniversalClient { return s.Server.Client(t) }

// startRedis gives t an empty Redis of its own for as long as t runs (extra
// args after the defaults), and a client with the suite's short timeouts.
func startRedis(t *testing.T, args []string) (redisProcess, redis.UniversalClient) {
	t.Helper()
	const (
		dialTimeout = 300 * time.Millisecond
		ioTimeout   = 500 * time.Millisecond
		// One dial attempt: a stopped Redis is answered U at once.
		dialerRetries      = 1
		dialerRetryTimeout = 10 * time.Millisecond
	)
	if clusters == nil {
		srv := redistest.Start(t, args...)
		rdb := redis.NewClient(&redis.Options{
			Addr:        srv.Addr(),
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
			MaxRetries:    -1, // go-redis: 0 means "the default, 3"; -1 means none
			DialerRetries: dialerRetries, DialerRetryTimeout: dialerRetryTimeout,
		})
		t.Cleanup(func() { _ = rdb.Close() })
		return singleRedis{srv}, rdb
	}
	c := clusters.take(t, args)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:       c.Addrs(),
		DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
		MaxRetries:    -1,
		DialerRetries: dialerRetries, DialerRetryTimeout: dialerRetryTimeout,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return &takenCluster{t: t, c: c}, rdb
}

// takenCluster is a pooled cluster while one env holds it.
type takenCluster struct {
	t *testing.T
	c *redistest.Cluster
}

func (tc *takenCluster) Stop() { tc.c.Stop() }

func (tc *takenCluster) Client(t testing.TB) redis.UniversalClient { return tc.c.Client(t) }

func (tc *takenCluster) Restart() {
	tc.t.Helper()
	if err := tc.c.Restart(); err != nil {
		tc.t.Fatalf("restart the cluster: %v", err)
	}
}

// clusterPool lends clusters to envs, one env at a time each, emptied
// between them: creating a cluster takes seconds (redis-cli waits a second
// for the join, a restarted master two before it serves), so clusters are
// reused, launched ahead of need and restarted in the background. They are
// pooled by their redis-server arguments.
type clusterPool struct {
	dir string

	mu      sync.Mutex
	changed *sync.Cond // broadcast when idle or pending change
	idle    map[string][]*redistest.Cluster
	pending map[string]int // launches and restarts under way
	all     []*redistest.Cluster
}

func newClusterPool(dir string) *clusterPool {
	p := &clusterPool{dir: dir, idle: map[string][]*redistest.Cluster{}, pending: map[string]int{}}
	p.changed = sync.NewCond(&p.mu)
	return p
}

func poolKey(args []string) string { return strings.Join(args, "\x00") }

// prepare launches a cluster with args in the background, for a test to
// take later.
func (p *clusterPool) prepare(args []string) {
	key := poolKey(args)
	p.mu.Lock()
	p.pending[key]++
	p.mu.Unlock()
	go func() {
		c, err := p.launch(args)
		p.ready(key, c, err)
	}()
}

func (p *clusterPool) launch(args []string) (*redistest.Cluster, error) {
	dir, err := os.MkdirTemp(p.dir, "cluster-")
	if err != nil {
		return nil, err
	}
	c, err := redistest.LaunchCluster(dir, args...)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, c)
	return c, nil
}

// ready ends a background launch or restart: c is idle now, or, failing
// that, the next test to need one launches its own.
func (p *clusterPool) ready(key string, c *redistest.Cluster, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[key]--
	if err != nil {
		fmt.Fprintf(os.Stderr, "contract: a pooled Redis Cluster: %v\n", err)
	} else {
		p.idle[key] = append(p.idle[key], c)
	}
	p.changed.Broadcast()
}

// take lends t a running, empty cluster started with args until t ends.
func (p *clusterPool) take(t *testing.T, args []string) *redistest.Cluster {
	t.Helper()
	key := poolKey(args)
	var c *redistest.Cluster
	p.mu.Lock()
	// A launch or restart under way is no slower than one of our own.
	for len(p.idle[key]) == 0 && p.pending[key] > 0 {
		p.changed.Wait()
	}
	if n := len(p.idle[key]); n > 0 {
		c, p.idle[key] = p.idle[key][n-1], p.idle[key][:n-1]
	}
	p.mu.Unlock()

	if c == nil {
		var err error
		if c, err = p.launch(args); err != nil {
			t.Fatalf("redistest: %v", err)
		}
	} else if err := c.FlushAll(t.Context()); err != nil {
		t.Fatalf("empty a pooled cluster: %v", err)
	}
	t.Cleanup(func() { p.giveBack(key, c) })
	return c
}

// giveBack returns a cluster to the pool; one that a fault test left
// stopped restarts in the background meanwhile.
func (p *clusterPool) giveBack(key string, c *redistest.Cluster) {
	if !c.Running() {
		p.mu.Lock()
		p.pending[key]++
		p.mu.Unlock()
		go func() { p.ready(key, c, c.Restart()) }()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle[key] = append(p.idle[key], c)
	p.changed.Broadcast()
}

// stop waits for the launches and restarts under way, then stops every
// cluster the pool started.
func (p *clusterPool) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.anyPending() {
		p.changed.Wait()
	}
	for _, c := range p.all {
		c.Stop()
	}
}

func (p *clusterPool) anyPending() bool {
	for _, n := range p.pending {
		if n > 0 {
			return true
		}
	}
	return false
}
