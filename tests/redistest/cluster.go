package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// Cluster is a Redis Cluster of three masters, without replicas
// (StartCluster) or with one each (StartReplicatedCluster), each node a
// redis-server process on free ports in a directory of its own.
type Cluster struct {
	server, cli string
	dir         string
	replicas    int // per master

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
	paused bool          // SIGSTOP sent, no SIGCONT since
}

// StartCluster starts a cluster owned by t, with extraArgs after every
// node's defaults (later arguments win), and waits until every node reports
// cluster_state:ok. It is stopped when t ends. A missing redis-server or
// redis-cli fails the test.
func StartCluster(t testing.TB, extraArgs ...string) *Cluster {
	t.Helper()
	return startCluster(t, 0, extraArgs)
}

// StartReplicatedCluster is StartCluster with a replica for each master:
// six nodes, for failover tests. It also waits until every replica has
// synchronised with its master, so that it is eligible for promotion.
// Failover timing follows cluster-node-timeout (Redis's default: 15 s);
// tests pass a shorter one in extraArgs ("--cluster-node-timeout", "2000").
func StartReplicatedCluster(t testing.TB, extraArgs ...string) *Cluster {
	t.Helper()
	return startCluster(t, 1, extraArgs)
}

func startCluster(t testing.TB, replicas int, extraArgs []string) *Cluster {
	t.Helper()
	c, err := launchCluster(t.TempDir(), replicas, extraArgs)
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
	return launchCluster(dir, 0, extraArgs)
}

func launchCluster(dir string, replicas int, extraArgs []string) (*Cluster, error) {
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
	size := clusterSize * (1 + replicas)
	ports, err := freePorts(2 * size)
	if err != nil {
		return nil, err
	}
	c := &Cluster{server: server, cli: cli, dir: dir, replicas: replicas}
	for i := range size {
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
				// A replica's first synchronisation starts at once, not
				// after Redis' default 5 s wait for more replicas.
				"--repl-diskless-sync-delay", "0",
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
	if err := c.waitReplicasLocked(); err != nil {
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

// Addrs are the nodes' host:port, in the order they were started: without
// replicas, one per master; with replicas, every node (which are masters
// changes with failovers: see Masters).
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

// FlushAll empties every master (replicas follow).
func (c *Cluster) FlushAll(ctx context.Context) error {
	masters, err := c.Masters()
	if err != nil {
		return err
	}
	for _, addr := range masters {
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
	if err := c.waitReplicasLocked(); err != nil {
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
		_ = n.cmd.Process.Kill() // fails only if it has exited already; SIGKILL ends a paused one too
		<-n.exited
		n.cmd, n.paused = nil, false
	}
}

// startLocked starts every node and waits until each answers PING.
func (c *Cluster) startLocked() error {
	for _, n := range c.nodes {
		if err := c.startNodeLocked(n); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		if err := n.waitPing(); err != nil {
			return err
		}
	}
	return nil
}

// startNodeLocked starts n's process, with its arguments and directory.
func (c *Cluster) startNodeLocked(n *clusterNode) error {
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
	return nil
}

// waitPing waits until n answers PING.
func (n *clusterNode) waitPing() error {
	if err := poll(readyWithin, n.exited, func() error { return ping(n.addr) }); err != nil {
		return fmt.Errorf("redis-server on %s: %w\n%s", n.addr, err, n.out.String())
	}
	return nil
}

// Revive starts again the node at addr, killed before (Kill), on its port
// and with its directory, and waits until the cluster is whole again: every
// node knows three masters and their replicas, none failing, and every
// replica's link to its master is up (its master streams writes to it from
// its first acknowledgement, within a second). A master replaced meanwhile
// comes back as a replica of its successor, empty (the nodes do not
// persist data) until it has synchronised.
func (c *Cluster) Revive(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.nodes, func(n *clusterNode) bool { return n.addr == addr })
	switch {
	case i < 0:
		return fmt.Errorf("no node %s in the cluster", addr)
	case c.nodes[i].cmd != nil:
		return fmt.Errorf("node %s is running", addr)
	}
	n := c.nodes[i]
	if err := c.startNodeLocked(n); err != nil {
		return err
	}
	if err := n.waitPing(); err != nil {
		return err
	}
	if err := c.waitOKLocked(); err != nil {
		return err
	}
	return c.waitReplicasLocked()
}

// ReplicasOf are the addresses of the replicas of the master at addr that
// are not failing, as a live node sees it, sorted.
func (c *Cluster) ReplicasOf(master string) ([]string, error) {
	var errs []error
	for _, addr := range c.live() {
		var replicas []string
		err := onNode(addr, func(cl *redis.Client) error {
			text, err := cl.ClusterNodes(context.Background()).Result()
			if err != nil {
				return err
			}
			// id addr@bus flags master-id …: the master's id first.
			var id string
			lines := slices.Collect(strings.Lines(text))
			for _, line := range lines {
				if f := strings.Fields(line); len(f) >= 8 && strings.HasPrefix(f[1], master+"@") {
					id = f[0]
				}
			}
			if id == "" {
				return fmt.Errorf("no node %s", master)
			}
			for _, line := range lines {
				f := strings.Fields(line)
				if len(f) >= 8 && f[3] == id && !strings.Contains(","+f[2]+",", ",fail") {
					replicas = append(replicas, strings.SplitN(f[1], "@", 2)[0])
				}
			}
			return nil
		})
		if err == nil {
			slices.Sort(replicas)
			return replicas, nil
		}
		errs = append(errs, fmt.Errorf("CLUSTER NODES on %s: %w", addr, err))
	}
	return nil, fmt.Errorf("no live node listed the replicas of %s: %w", master, errors.Join(errs...))
}

// create assigns the slots to the nodes and joins them, as an operator
// would.
func (c *Cluster) create() error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyWithin)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(c.replicas), "--cluster-yes")
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

// Poll calls check every 10 ms until it succeeds or within has passed, and
// returns its last error then: waiting on a condition, never a sleep.
func Poll(within time.Duration, check func() error) error {
	return poll(within, nil, check)
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
	cl := redis.NewClient(nodeOptions(addr))
	defer cl.Close()
	return f(cl)
}

// nodeOptions are those of a one-off client of a node: no retries, and
// every wait bounded, since a node may be paused.
func nodeOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr: addr, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	}
}

// waitReplicasLocked waits, on a cluster with replicas, until every node
// knows every other with its role and none as failing, and every replica's
// link to its master is up: a replica that never synchronised is not
// promoted, and a node that does not know the others yet cannot vote.
func (c *Cluster) waitReplicasLocked() error {
	if c.replicas == 0 {
		return nil
	}
	deadline := time.Now().Add(clusterReadyWithin)
	wantMasters, wantReplicas := clusterSize, clusterSize*c.replicas
	for _, n := range c.nodes {
		err := poll(time.Until(deadline), n.exited, func() error {
			return onNode(n.addr, func(cl *redis.Client) error {
				ctx := context.Background()
				text, err := cl.ClusterNodes(ctx).Result()
				if err != nil {
					return err
				}
				var masters, replicas int
				replica := false
				for line := range strings.Lines(text) {
					f := strings.Fields(line)
					if len(f) < 8 {
						continue
					}
					flags := "," + f[2] + ","
					if f[7] != "connected" || strings.Contains(flags, ",fail") || strings.Contains(flags, ",handshake,") || strings.Contains(flags, ",noaddr,") {
						return fmt.Errorf("node %s is %s, %s", f[1], f[2], f[7])
					}
					switch {
					case strings.Contains(flags, ",master,"):
						masters++
					case strings.Contains(flags, ",slave,"):
						replicas++
						replica = replica || strings.Contains(flags, ",myself,")
					}
				}
				if masters != wantMasters || replicas != wantReplicas {
					return fmt.Errorf("knows %d masters and %d replicas, want %d and %d", masters, replicas, wantMasters, wantReplicas)
				}
				if !replica {
					return nil
				}
				info, err := cl.Info(ctx, "replication").Result()
				if err != nil {
					return err
				}
				if !strings.Contains(info, "master_link_status:up") {
					return errors.New("replica's link to its master is not up")
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

// NumSlots is the number of hash slots of a Redis Cluster.
const NumSlots = 16384

// Slot is the hash slot of key, as Redis Cluster computes it: CRC16 (XMODEM)
// of the key, or of its hash tag (the first {…} with something inside),
// modulo NumSlots.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := range len(key) {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % NumSlots
}

// SlotMasters returns, for each slot, the address of its master as a live
// node sees it ("" for a slot no master serves).
func (c *Cluster) SlotMasters() ([]string, error) {
	var errs []error
	for _, addr := range c.live() {
		var owners []string
		err := onNode(addr, func(cl *redis.Client) error {
			var err error
			owners, err = slotMasters(context.Background(), cl)
			return err
		})
		if err == nil {
			return owners, nil
		}
		errs = append(errs, fmt.Errorf("CLUSTER SLOTS on %s: %w", addr, err))
	}
	return nil, fmt.Errorf("no live node gave the slot map: %w", errors.Join(errs...))
}

// slotMasters reads CLUSTER SHARDS: a shard's master is its node with the
// master role that is not failed (a dead master keeps the role in the
// listing until its replica takes over).
func slotMasters(ctx context.Context, cl *redis.Client) ([]string, error) {
	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	owners := make([]string, NumSlots)
	for _, sh := range shards {
		var master string
		for _, n := range sh.Nodes {
			if n.Role == "master" && n.Health == "online" {
				master = net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
			}
		}
		for _, r := range sh.Slots {
			for i := max(r.Start, 0); i <= min(r.End, NumSlots-1); i++ {
				owners[i] = master
			}
		}
	}
	return owners, nil
}

// Masters are the addresses of the nodes that serve slots now, as a live
// node sees it, sorted.
func (c *Cluster) Masters() ([]string, error) {
	owners, err := c.SlotMasters()
	if err != nil {
		return nil, err
	}
	var masters []string
	for _, m := range owners {
		if m != "" && !slices.Contains(masters, m) {
			masters = append(masters, m)
		}
	}
	slices.Sort(masters)
	return masters, nil
}

// MasterOf is the address of the master serving key's slot now.
func (c *Cluster) MasterOf(key string) (string, error) {
	owners, err := c.SlotMasters()
	if err != nil {
		return "", err
	}
	if m := owners[Slot(key)]; m != "" {
		return m, nil
	}
	return "", fmt.Errorf("no master serves slot %d of %q", Slot(key), key)
}

// Kill kills the node at addr with SIGKILL, a crash, and waits until the
// process is gone. Its slots stay unserved until a replica is promoted.
func (c *Cluster) Kill(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.nodeLocked(addr)
	if err != nil {
		return err
	}
	_ = n.cmd.Process.Kill() // fails only if it has exited already
	<-n.exited
	n.cmd, n.paused = nil, false
	return nil
}

// Pause freezes the node at addr with SIGSTOP, like a hung host: the kernel
// still accepts connections to it, but nothing is answered until Resume.
// The other nodes take it for failed after cluster-node-timeout.
func (c *Cluster) Pause(addr string) error { return c.signal(addr, syscall.SIGSTOP) }

// Resume lets a paused node go on (SIGCONT). A master replaced meanwhile
// comes back as a replica of its successor.
func (c *Cluster) Resume(addr string) error { return c.signal(addr, syscall.SIGCONT) }

func (c *Cluster) signal(addr string, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.nodeLocked(addr)
	if err != nil {
		return err
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%v to %s: %w", sig, addr, err)
	}
	n.paused = sig == syscall.SIGSTOP
	return nil
}

// nodeLocked is the running node at addr.
func (c *Cluster) nodeLocked(addr string) (*clusterNode, error) {
	for _, n := range c.nodes {
		if n.addr != addr {
			continue
		}
		if n.cmd == nil {
			return nil, fmt.Errorf("node %s is not running", addr)
		}
		return n, nil
	}
	return nil, fmt.Errorf("no node %s in the cluster", addr)
}

// live are the addresses of the nodes running and not paused.
func (c *Cluster) live() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	for _, n := range c.nodes {
		if n.cmd != nil && !n.paused {
			addrs = append(addrs, n.addr)
		}
	}
	return addrs
}

// WaitPromotion polls the live nodes' slot maps every 10 ms until every
// one shows every slot served and none by gone (a master killed or paused),
// for at most within. It returns when the first node showed it: the
// promotion, give or take a poll (the promoted replica knows first, the
// others within milliseconds).
func (c *Cluster) WaitPromotion(gone string, within time.Duration) (time.Time, error) {
	clients := map[string]*redis.Client{}
	defer func() {
		for _, cl := range clients {
			_ = cl.Close()
		}
	}()
	var first time.Time
	err := poll(within, nil, func() error {
		var errs []error
		for _, addr := range c.live() {
			cl := clients[addr]
			if cl == nil {
				cl = redis.NewClient(nodeOptions(addr))
				clients[addr] = cl
			}
			owners, err := slotMasters(context.Background(), cl)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", addr, err))
				continue
			}
			if i := slices.IndexFunc(owners, func(m string) bool { return m == "" || m == gone }); i >= 0 {
				errs = append(errs, fmt.Errorf("%s: slot %d served by %q", addr, i, owners[i]))
				continue
			}
			if first.IsZero() {
				first = time.Now()
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("no replica promoted in place of %s, as every node sees it: %w", gone, errors.Join(errs...))
		}
		return nil
	})
	return first, err
}
