package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterReadyWithin bounds how long a cluster may take to be created or to
// come back after a restart: redis-cli polls the join once a second, and a
// restarted master waits 2 s before it serves again.
const clusterReadyWithin = 30 * time.Second

// clusterSize is the number of masters: the fewest redis-cli --cluster
// create accepts.
const clusterSize = 3

// Cluster is a Redis Cluster of three masters without replicas, each a
// redis-server process on free ports in a directory of its own.
type Cluster struct {
	server, cli string
	dir         string

	mu    sync.Mutex
	nodes []*clusterNode
}

// clusterNode is one redis-server of a Cluster.
type clusterNode struct {
	addr   string
	args   []string
	out    *syncBuffer
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed once cmd has been waited for
}

// StartCluster starts a cluster owned by t, with extraArgs after every
// node's defaults (later arguments win), and waits until every node reports
// cluster_state:ok. It is stopped when t ends. A missing redis-server or
// redis-cli fails the test.
func StartCluster(t testing.TB, extraArgs ...string) *Cluster {
	t.Helper()
	c, err := LaunchCluster(t.TempDir(), extraArgs...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	// Registered after TempDir, so it runs first: the nodes stop before
	// their directories are removed.
	t.Cleanup(c.Stop)
	return c
}

// LaunchCluster is StartCluster for code that has no test to own the
// cluster, such as a TestMain sharing one across a package: the nodes live
// in dir, and the caller must Stop the cluster.
func LaunchCluster(dir string, extraArgs ...string) (*Cluster, error) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found: run scripts/ensure-redis.sh")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli not found: run scripts/ensure-redis.sh")
	}
	// Each node needs two ports: clients' and the cluster bus. The bus port
	// defaults to port+10000, which may be taken or out of range, so it is
	// picked free like the other and named with --cluster-port.
	ports, err := freePorts(2 * clusterSize)
	if err != nil {
		return nil, err
	}
	c := &Cluster{server: server, cli: cli, dir: dir}
	for i := range clusterSize {
		port, bus := ports[2*i], ports[2*i+1]
		nodeDir := filepath.Join(dir, "node-"+strconv.Itoa(port))
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			return nil, fmt.Errorf("cluster node directory: %w", err)
		}
		c.nodes = append(c.nodes, &clusterNode{
			addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			args: append([]string{
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", nodeDir,
				"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
				// Relative to --dir: the cluster's layout survives Restart.
				"--cluster-config-file", "nodes.conf",
			}, extraArgs...),
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.startLocked(); err != nil {
		c.stopLocked()
		return nil, err
	}
	if err := c.create(); err != nil {
		c.stopLocked()
		return nil, err
	}
	if err := c.waitOKLocked(); err != nil {
		c.stopLocked()
		return nil, err
	}
	return c, nil
}

// freePorts asks the kernel for n distinct free ports, holding each until
// all are known. Another process could take one before redis-server binds
// it; the start then fails visibly, not flakily.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Addrs are the nodes' host:port, one per master.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr
	}
	return addrs
}

// URL names the cluster as ORDERHUB_REDIS_URL does: the redis+cluster
// scheme with the first node, and the others as addr parameters.
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	return "redis+cluster://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
}

// Client returns a cluster client seeded with every node, closed when t
// ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// FlushAll empties every node (all are masters).
func (c *Cluster) FlushAll(ctx context.Context) error {
	for _, addr := range c.Addrs() {
		if err := onNode(addr, func(n *redis.Client) error { return n.FlushAll(ctx).Err() }); err != nil {
			return fmt.Errorf("FLUSHALL on %s: %w", addr, err)
		}
	}
	return nil
}

// Running reports whether every node's process runs.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.cmd == nil {
			return false
		}
	}
	return true
}

// Stop kills every node (like a crash: no shutdown save) and waits for the
// processes to exit. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

// Restart stops the cluster if it runs and starts every node again on its
// ports, with its arguments and directory, so the same cluster comes back
// (data included only if the arguments persist it); then it waits until
// every node reports cluster_state:ok. It returns an error rather than
// failing a test, since a cluster from LaunchCluster has none.
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
	if err := c.startLocked(); err != nil {
		c.stopLocked()
		return err
	}
	if err := c.waitOKLocked(); err != nil {
		c.stopLocked()
		return err
	}
	return nil
}

func (c *Cluster) stopLocked() {
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		_ = n.cmd.Process.Kill() // fails only if it has exited already
		<-n.exited
		n.cmd = nil
	}
}

// startLocked starts every node and waits until each answers PING.
func (c *Cluster) startLocked() error {
	for _, n := range c.nodes {
		cmd := exec.Command(c.server, n.args...)
		n.out = &syncBuffer{}
		cmd.Stdout, cmd.Stderr = n.out, n.out
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start redis-server: %w", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		n.cmd, n.exited = cmd, exited
	}
	for _, n := range c.nodes {
		err := poll(readyWithin, n.exited, func() error { return ping(n.addr) })
		if err != nil {
			return fmt.Errorf("redis-server on %s: %w\n%s", n.addr, err, n.out.String())
		}
	}
	return nil
}

// create assigns the slots to the nodes and joins them, as an operator
// would.
func (c *Cluster) create() error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyWithin)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, c.cli, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return nil
}

// waitOKLocked polls CLUSTER INFO on every node until each says
// cluster_state:ok: only then does every slot have a master that every node
// knows, and a client may start.
func (c *Cluster) waitOKLocked() error {
	deadline := time.Now().Add(clusterReadyWithin)
	for _, n := range c.nodes {
		err := poll(time.Until(deadline), n.exited, func() error {
			return onNode(n.addr, func(cl *redis.Client) error {
				info, err := cl.ClusterInfo(context.Background()).Result()
				if err != nil {
					return err
				}
				if !strings.Contains(info, "cluster_state:ok") {
					return errors.New("cluster_state is not ok")
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("cluster node %s: %w\n%s", n.addr, err, n.out.String())
		}
	}
	return nil
}

// poll calls check every 10 ms until it succeeds, exited is closed (the
// process died), or within has passed; it returns check's last error then.
func poll(within time.Duration, exited <-chan struct{}, check func() error) error {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-tick.C:
		}
	}
}

// onNode runs f with a one-off client of the node at addr, which does not
// retry: a failure is for the caller to judge.
func onNode(addr string, f func(*redis.Client) error) error {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, DialerRetries: 1})
	defer cl.Close()
	return f(cl)
}
