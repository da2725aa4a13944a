package orderhub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/store"
)

// openStore opens the Redis that url names, tuned to the request timeout,
// its commits acknowledged by minReplicas replicas, or the in-memory store
// when url is empty. It also returns the Redis client, for the rate limiter
// (nil: no Redis), and a line naming the store (without a password).
func openStore(url string, minReplicas int, requestTimeout time.Duration, log *slog.Logger) (store.Store, redis.UniversalClient, string, error) {
	if url == "" {
		return store.NewMemory(nil), nil, "memory", nil
	}
	rdb, name, err := redisClient(url, requestTimeout)
	if err != nil {
		return nil, nil, "", err
	}
	rdb.AddHook(roundTrips{log})
	if minReplicas > 0 {
		name += fmt.Sprintf(", commits acknowledged by %d replica(s)", minReplicas)
	}
	return store.NewRedis(rdb, store.MinReplicas(minReplicas)), rdb, name, nil
}

// redisClient is the client of the Redis that rawURL names, tuned to the
// request timeout, and how to name it in the start-up line (no password).
func redisClient(rawURL string, requestTimeout time.Duration) (redis.UniversalClient, string, error) {
	node, cluster, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	if cluster != nil {
		tuneRedisCluster(cluster, requestTimeout)
		cc := redis.NewClusterClient(cluster)
		// Before any node client exists: each gets the hook as it is made.
		cc.OnNewNode(func(n *redis.Client) { n.AddHook(topologyTimeout(clusterStateTimeout)) })
		return cc, "redis cluster " + strings.Join(cluster.Addrs, ","), nil
	}
	tuneRedis(node, requestTimeout)
	return redis.NewClient(node), "redis " + node.Addr, nil
}

// Schemes of a Redis Cluster; the plain schemes name a single node unless
// the URL lists several addresses.
const (
	clusterScheme    = "redis+cluster"
	clusterTLSScheme = "rediss+cluster"
)

// parseRedisURL reads a Redis URL with go-redis's own parsers and
// returns the options of a single node or of a cluster (exactly one is
// non-nil). The rule, as go-redis's UniversalClient has it:
//
//   - redis+cluster:// or rediss+cluster:// is a cluster, even with one seed
//     address (a managed cluster's configuration endpoint);
//   - redis:// or rediss:// with addr= parameters (go-redis's cluster URL:
//     redis://h1:p1?addr=h2:p2&addr=h3:p3) is a cluster seeded with every
//     address;
//   - anything else is one node: redis://, rediss:// or unix://.
//
// A cluster has only database 0: another number is refused, not ignored.
//
// One query parameter is orderhub's own, taken out before go-redis (which
// refuses options it does not know) reads the rest: cluster_reload, how
// often the cluster client reloads the slot map (see clusterReloadParam).
func parseRedisURL(rawURL string) (*redis.Options, *redis.ClusterOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("not a URL: %v", err)
	}
	var cluster bool
	switch u.Scheme {
	case clusterScheme, clusterTLSScheme:
		cluster = true
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
	case "redis", "rediss":
		cluster = u.Query().Has("addr")
	case "unix":
	default:
		return nil, nil, fmt.Errorf("scheme %q: want redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://", u.Scheme)
	}
	// go-redis drops a malformed query and fills in an empty host with
	// localhost:6379: both would start orderhub on something not asked for.
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return nil, nil, fmt.Errorf("query: %v", err)
	}
	if u.Scheme != "unix" && (u.Hostname() == "" || strings.Contains(u.Host, ",")) {
		return nil, nil, errors.New("name one host:port after the scheme (more cluster seeds go in addr= parameters)")
	}
	q := u.Query()
	reload, hasReload := q[clusterReloadParam]
	if !cluster {
		if hasReload {
			return nil, nil, fmt.Errorf("%s: only a Redis Cluster has a slot map to reload (redis+cluster:// or addr= parameters)", clusterReloadParam)
		}
		opt, err := redis.ParseURL(rawURL)
		return opt, nil, err
	}
	var reloadEvery time.Duration
	if hasReload {
		if reloadEvery, err = parseReload(reload); err != nil {
			return nil, nil, err
		}
		q.Del(clusterReloadParam)
		u.RawQuery = q.Encode()
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return nil, nil, fmt.Errorf("database %q: a Redis Cluster has only database 0", db)
	}
	u.Path = ""
	opt, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return nil, nil, err
	}
	opt.ClusterStateReloadInterval = reloadEvery // 0: tuneRedisCluster's default
	return nil, opt, nil
}

// clusterReloadParam is orderhub's URL parameter for the cluster client's
// ClusterStateReloadInterval. go-redis reloads the slot map on MOVED/ASK or
// once per interval (its default: 60 s); a master that died answers neither,
// so after a failover its slots kept going to the dead address, answered U,
// until the next reload: a minute.
const clusterReloadParam = "cluster_reload"

// defaultClusterReload is the reload interval without cluster_reload: after a
// promotion the dead master's slots answer again within about this long. A
// reload is one CLUSTER SLOTS on one node, and only when requests come.
const defaultClusterReload = time.Second

// parseReload reads cluster_reload as go-redis reads its own durations: a Go
// duration ("500ms") or a number of seconds ("2").
func parseReload(values []string) (time.Duration, error) {
	if len(values) != 1 {
		return 0, fmt.Errorf("%s: give it once, not %d times", clusterReloadParam, len(values))
	}
	v := values[0]
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, fmt.Errorf("%s=%q: want a duration such as 1s or 500ms", clusterReloadParam, v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a duration above zero", clusterReloadParam, v)
	}
	return d, nil
}

// clusterStateTimeout bounds each call that reads the cluster's layout
// (CLUSTER SLOTS on a reload), dial included. Such a call runs on a context
// without a deadline, so only the read timeout (half a request's time) ended
// it; and a reload asks one node after another: a frozen master (SIGSTOP, a
// hung host) accepts the connection through the kernel's backlog and never
// answers, and each reload that asked it first came late by that much. A
// live node answers in well under a millisecond.
const clusterStateTimeout = 500 * time.Millisecond

// topologyTimeout is a node client's hook bounding the cluster layout
// commands by its duration; other commands pass untouched, with tune's
// timeouts.
type topologyTimeout time.Duration

func (topologyTimeout) DialHook(next redis.DialHook) redis.DialHook { return next }

func (d topologyTimeout) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isTopologyCommand(cmd) {
			return next(ctx, cmd)
		}
		// The dial of a new connection runs under this context too.
		ctx, cancel := context.WithTimeout(ctx, time.Duration(d))
		defer cancel()
		return next(ctx, cmd)
	}
}

func (topologyTimeout) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// isTopologyCommand: CLUSTER SLOTS, SHARDS or NODES, whichever the client
// reads the layout with.
func isTopologyCommand(cmd redis.Cmder) bool {
	args := cmd.Args()
	if cmd.Name() != "cluster" || len(args) < 2 {
		return false
	}
	sub, _ := args[1].(string)
	switch strings.ToLower(sub) {
	case "slots", "shards", "nodes":
		return true
	}
	return false
}

// tuneRedis makes every Redis call end within the request's deadline: a
// hung or unreachable Redis must turn into a U answer in time, never a
// request that waits past what the caller is told.
//
// Not every call carries that deadline: after a failed request the
// requestId is given back on a context detached from the request's, which
// has just expired. Only these options bound such a call. With go-redis's
// defaults (3 s reads, 3 retries) a Redis hanging mid-request held the U
// answer for 12 s, past the HTTP write timeout, and the caller got a broken
// connection instead (tests/reliability TestRedisHangsMidRequest).
func tuneRedis(opt *redis.Options, requestTimeout time.Duration) {
	tune(timeouts{&opt.ContextTimeoutEnabled, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.MaxRetries, &opt.DialerRetries}, requestTimeout)
}

// tuneRedisCluster tunes a cluster's options as tuneRedis tunes a node's:
// the cluster client hands these same fields to each of its node clients.
func tuneRedisCluster(opt *redis.ClusterOptions, requestTimeout time.Duration) {
	tune(timeouts{&opt.ContextTimeoutEnabled, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.MaxRetries, &opt.DialerRetries}, requestTimeout)
	// The cluster client also re-sends on network errors and MOVED/ASK up
	// to MaxRedirects times, whatever MaxRetries says: a script whose reply
	// was lost may have run. -1: none; the partner's retry is the retry.
	opt.MaxRedirects = -1
	if opt.ClusterStateReloadInterval <= 0 {
		opt.ClusterStateReloadInterval = defaultClusterReload
	}
}

// timeouts points at the fields that redis.Options and redis.ClusterOptions
// share and tune sets, so that one function tunes both in place.
type timeouts struct {
	contextTimeout            *bool
	dial, read, write         *time.Duration
	maxRetries, dialerRetries *int
}

func tune(t timeouts, requestTimeout time.Duration) {
	// Honour the request context's deadline on reads and writes; without
	// this go-redis applies only its own timeouts and ignores the context.
	*t.contextTimeout = true
	// Dialling is not bounded by the context in every path, and a call
	// without a deadline waits at most half a request's time.
	for _, d := range []*time.Duration{t.dial, t.read, t.write} {
		if *d <= 0 || *d > requestTimeout/2 { // ≤ 0 is go-redis's default or "none"
			*d = requestTimeout / 2
		}
	}
	// No retries: a script that timed out may have run, and running it
	// again finds its own claim (the requestId then answers U for a whole
	// lease) or writes twice; and each retry adds a wait on a hung Redis.
	// The answer is U and the partner's retry is the retry.
	*t.maxRetries = -1
	// One dial: a refused connection (Redis down) is answered U at once,
	// not after the dialer's retries spent the request's time.
	*t.dialerRetries = 1
}
