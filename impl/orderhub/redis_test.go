package orderhub

import (
	"context"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestParseRedisURLSingleNode(t *testing.T) {
	for _, tc := range []struct {
		url                 string
		network, addr       string
		db                  int
		user, password, tls string // tls: the expected ServerName, "" for none
	}{
		{url: "redis://localhost:6379/0", network: "tcp", addr: "localhost:6379"},
		{url: "redis://redis.internal", network: "tcp", addr: "redis.internal:6379"},
		{url: "redis://app:s3cret@10.0.0.5:6380/2", network: "tcp", addr: "10.0.0.5:6380", db: 2, user: "app", password: "s3cret"},
		{url: "rediss://:s3cret@redis.internal:6380/1", network: "tcp", addr: "redis.internal:6380", db: 1, password: "s3cret", tls: "redis.internal"},
		{url: "unix:///run/redis/redis.sock", network: "unix", addr: "/run/redis/redis.sock"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			node, cluster, err := parseRedisURL(tc.url)
			if err != nil || node == nil || cluster != nil {
				t.Fatalf("got node %v, cluster %v, err %v; want a single node", node, cluster, err)
			}
			if node.Network != tc.network || node.Addr != tc.addr || node.DB != tc.db || node.Username != tc.user || node.Password != tc.password {
				t.Errorf("got %s %s db %d user %q password %q; want %s %s db %d user %q password %q",
					node.Network, node.Addr, node.DB, node.Username, node.Password, tc.network, tc.addr, tc.db, tc.user, tc.password)
			}
			if got := serverName(node.TLSConfig != nil, func() string { return node.TLSConfig.ServerName }); got != tc.tls {
				t.Errorf("TLS server name %q, want %q", got, tc.tls)
			}
		})
	}
}

func TestParseRedisURLCluster(t *testing.T) {
	for _, tc := range []struct {
		url                 string
		addrs               []string
		user, password, tls string
	}{
		// One seed: a managed cluster's configuration endpoint.
		{url: "redis+cluster://redis-cfg.internal:6379", addrs: []string{"redis-cfg.internal:6379"}},
		{url: "redis+cluster://app:s3cret@10.0.0.1:7000/0?addr=10.0.0.2:7000&addr=10.0.0.3:7000",
			addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}, user: "app", password: "s3cret"},
		{url: "rediss+cluster://:s3cret@redis-cfg.internal:6380", addrs: []string{"redis-cfg.internal:6380"}, password: "s3cret", tls: "redis-cfg.internal"},
		// go-redis's own cluster URL: several addresses make a cluster.
		{url: "redis://10.0.0.1:7000?addr=10.0.0.2:7000", addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}},
		{url: "rediss://10.0.0.1:7000/?addr=10.0.0.2:7000", addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, tls: "10.0.0.1"},
		// go-redis's options apply to the cluster as to a node.
		{url: "redis+cluster://h1:7000?addr=h2:7000&dial_timeout=2s", addrs: []string{"h1:7000", "h2:7000"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			node, cluster, err := parseRedisURL(tc.url)
			if err != nil || node != nil || cluster == nil {
				t.Fatalf("got node %v, cluster %v, err %v; want a cluster", node, cluster, err)
			}
			if !slices.Equal(cluster.Addrs, tc.addrs) || cluster.Username != tc.user || cluster.Password != tc.password {
				t.Errorf("got %v user %q password %q; want %v user %q password %q",
					cluster.Addrs, cluster.Username, cluster.Password, tc.addrs, tc.user, tc.password)
			}
			if got := serverName(cluster.TLSConfig != nil, func() string { return cluster.TLSConfig.ServerName }); got != tc.tls {
				t.Errorf("TLS server name %q, want %q", got, tc.tls)
			}
		})
	}
	_, cluster, err := parseRedisURL("redis+cluster://h1:7000?dial_timeout=2s")
	if err != nil || cluster.DialTimeout != 2*time.Second {
		t.Errorf("dial_timeout=2s: got %v, %v", cluster, err)
	}
}

func serverName(hasTLS bool, name func() string) string {
	if !hasTLS {
		return ""
	}
	return name()
}

func TestParseRedisURLRefuses(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // in the message
	}{
		{"http://redis.internal:6379", "scheme"},
		{"redis+sentinel://redis.internal:26379", "scheme"},
		{"redis://redis.internal:6379/x", "database"},
		{"redis://redis.internal:6379?pool=3", "unexpected option"},
		{"redis+cluster://h1:7000/1", "only database 0"},
		{"redis://h1:7000/2?addr=h2:7000", "only database 0"},
		{"redis+cluster://h1:7000?addr=h2", "addr"},
		{"redis+cluster://h1:7000?route=fast", "unexpected option"},
		// url.Parse's own error repeats the URL: the password must not
		// reach the log.
		{"redis://app:s3cret@h1:port/0", "not a URL"},
		{"redis+cluster://app:s3cret@h1:port", "not a URL"},
		{"redis+cluster://app:s3cret@h1:1,h2:2", "one host:port"},
		{"redis+cluster://?addr=h2:7000", "one host:port"},
		{"redis://", "one host:port"},
		{"redis+cluster://h1:7000?addr=bad%zz", "query"},
		// orderhub's own parameter.
		{"redis://h1:7000/0?cluster_reload=1s", "only a Redis Cluster"},
		{"unix:///run/redis.sock?cluster_reload=1s", "only a Redis Cluster"},
		{"redis+cluster://h1:7000?cluster_reload=soon", "want a duration"},
		{"redis+cluster://h1:7000?cluster_reload=", "want a duration"},
		{"redis+cluster://h1:7000?cluster_reload=0s", "above zero"},
		{"redis+cluster://h1:7000?cluster_reload=-1s", "above zero"},
		{"redis+cluster://h1:7000?cluster_reload=1s&cluster_reload=2s", "once"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			node, cluster, err := parseRedisURL(tc.url)
			if err == nil {
				t.Fatalf("accepted: node %v, cluster %v", node, cluster)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("message %q shows the password", err)
			}
		})
	}
}

// Both kinds of client get the request-deadline tuning.
func TestRedisClientTuned(t *testing.T) {
	const timeout = 4 * time.Second
	rdb, name, err := redisClient("redis://h1:7000?dial_timeout=1m", timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	node, ok := rdb.(*redis.Client)
	if !ok || name != "redis h1:7000" {
		t.Fatalf("got %T %q, want a *redis.Client named redis h1:7000", rdb, name)
	}
	if o := node.Options(); !o.ContextTimeoutEnabled || o.DialTimeout != timeout/2 {
		t.Errorf("node: ContextTimeoutEnabled %v, DialTimeout %v; want true, %v", o.ContextTimeoutEnabled, o.DialTimeout, timeout/2)
	}

	rdb, name, err = redisClient("redis+cluster://h1:7000?addr=h2:7000&dial_timeout=1m", timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cluster, ok := rdb.(*redis.ClusterClient)
	if !ok || name != "redis cluster h1:7000,h2:7000" {
		t.Fatalf("got %T %q, want a *redis.ClusterClient named redis cluster h1:7000,h2:7000", rdb, name)
	}
	if o := cluster.Options(); !o.ContextTimeoutEnabled || o.DialTimeout != timeout/2 {
		t.Errorf("cluster: ContextTimeoutEnabled %v, DialTimeout %v; want true, %v", o.ContextTimeoutEnabled, o.DialTimeout, timeout/2)
	}
}

// tuneRedisCluster must carry every field tuneRedis sets, whatever
// tuneRedis comes to tune: each field it changes on a node's options must
// change the same way on a cluster's.
func TestTuneRedisClusterFollowsTuneRedis(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		set     map[string]any // fields set before tuning, on both
	}{
		{"defaults", 10 * time.Second, nil},
		{"long dial", 2 * time.Second, map[string]any{"DialTimeout": time.Minute, "ReadTimeout": time.Minute, "MaxRetries": 7}},
		{"short dial", 10 * time.Second, map[string]any{"DialTimeout": time.Second, "ContextTimeoutEnabled": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var node redis.Options
			var cluster redis.ClusterOptions
			nv, cv := reflect.ValueOf(&node).Elem(), reflect.ValueOf(&cluster).Elem()
			for f, v := range tc.set {
				nv.FieldByName(f).Set(reflect.ValueOf(v))
				cv.FieldByName(f).Set(reflect.ValueOf(v))
			}
			before := node
			tuneRedis(&node, tc.timeout)
			tuneRedisCluster(&cluster, tc.timeout)
			bv := reflect.ValueOf(before)
			changed := 0
			for i := range nv.NumField() {
				f := nv.Type().Field(i)
				if !f.IsExported() || reflect.DeepEqual(nv.Field(i).Interface(), bv.Field(i).Interface()) {
					continue
				}
				changed++
				cf := cv.FieldByName(f.Name)
				if !cf.IsValid() {
					t.Errorf("tuneRedis sets %s, which ClusterOptions lacks: tune the cluster some other way", f.Name)
					continue
				}
				if !reflect.DeepEqual(cf.Interface(), nv.Field(i).Interface()) {
					t.Errorf("%s: tuneRedis sets %v, tuneRedisCluster %v", f.Name, nv.Field(i).Interface(), cf.Interface())
				}
			}
			if changed == 0 && tc.set == nil {
				t.Error("tuneRedis changed nothing on default options: this test would prove nothing")
			}
		})
	}
}

// The cluster client re-sends on network errors and redirects unless told
// not to: a Lua script whose reply was lost may have run already.
func TestClusterClientDoesNotResend(t *testing.T) {
	_, cluster, err := parseRedisURL("redis+cluster://h1:7000?addr=h2:7000")
	if err != nil {
		t.Fatal(err)
	}
	tuneRedisCluster(cluster, 10*time.Second)
	if cluster.MaxRedirects != -1 || cluster.MaxRetries != -1 {
		t.Errorf("MaxRedirects %d, MaxRetries %d: want -1 (none) for both", cluster.MaxRedirects, cluster.MaxRetries)
	}
}

// cluster_reload is orderhub's: go-redis never sees it (its parser refuses
// unknown options), and without it the slot map is reloaded every second.
func TestClusterReloadParam(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want time.Duration
	}{
		{"redis+cluster://h1:7000?addr=h2:7000", defaultClusterReload},
		{"redis+cluster://h1:7000?cluster_reload=250ms&addr=h2:7000", 250 * time.Millisecond},
		{"redis://h1:7000?addr=h2:7000&cluster_reload=2", 2 * time.Second},
		{"rediss+cluster://h1:7000?cluster_reload=1m&dial_timeout=2s", time.Minute},
	} {
		t.Run(tc.url, func(t *testing.T) {
			rdb, _, err := redisClient(tc.url, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			o := rdb.(*redis.ClusterClient).Options()
			if o.ClusterStateReloadInterval != tc.want {
				t.Errorf("ClusterStateReloadInterval %v, want %v", o.ClusterStateReloadInterval, tc.want)
			}
		})
	}
	// Taken out, the rest intact: addresses in order, go-redis's options.
	_, cluster, err := parseRedisURL("redis+cluster://h1:7000?cluster_reload=3s&addr=h2:7000&dial_timeout=2s&addr=h3:7000")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cluster.Addrs, []string{"h1:7000", "h2:7000", "h3:7000"}) || cluster.DialTimeout != 2*time.Second || cluster.ClusterStateReloadInterval != 3*time.Second {
		t.Errorf("got Addrs %v, DialTimeout %v, reload %v", cluster.Addrs, cluster.DialTimeout, cluster.ClusterStateReloadInterval)
	}
}

// A frozen node accepts connections (the kernel's backlog) and answers
// nothing. Reading the slot map from it must give up after
// clusterStateTimeout, not after the read timeout (here 5 s), or every
// reload that asks it first comes that much late.
func TestClusterStateReadIsBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()

	const requestTimeout = 10 * time.Second
	rdb, _, err := redisClient("redis+cluster://"+l.Addr().String(), requestTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	start := time.Now()
	err = rdb.Get(context.Background(), "k").Err()
	took := time.Since(start)
	if err == nil {
		t.Fatal("GET answered by a node that answers nothing")
	}
	// Generous: the bound is 500 ms, the read timeout it replaces 5 s.
	if took > requestTimeout/4 {
		t.Errorf("reading the slot map from a frozen node took %v (%v), want about %v", took.Round(time.Millisecond), err, clusterStateTimeout)
	}
}

// The hook bounds the layout commands only.
func TestIsTopologyCommand(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cmd  redis.Cmder
		want bool
	}{
		{redis.NewClusterSlotsCmd(ctx, "cluster", "slots"), true},
		{redis.NewClusterShardsCmd(ctx, "cluster", "shards"), true},
		{redis.NewStringCmd(ctx, "CLUSTER", "NODES"), true},
		{redis.NewStringCmd(ctx, "cluster", "info"), false},
		{redis.NewStringCmd(ctx, "cluster"), false},
		{redis.NewStringCmd(ctx, "get", "slots"), false},
		{redis.NewCmd(ctx, "evalsha", "abc", 1, "k"), false},
	} {
		if got := isTopologyCommand(tc.cmd); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.cmd.Args(), got, tc.want)
		}
	}
}
