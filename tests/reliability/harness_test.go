package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

const adminToken = "reliability-admin-token"

// durableRedis makes redis-server append every write to its AOF and fsync
// it before answering: what orderhub's design asks of production for zero
// loss, and what lets data survive a SIGKILL of redis-server.
var durableRedis = []string{"--appendonly", "yes", "--appendfsync", "always"}

// testKeys are the RSA key pairs of the package: testkit's fixed keys.
type testKeys struct {
	orderhub *rsa.PrivateKey // signs orderhub's responses
	client   *rsa.PrivateKey // the partner's
}

func keys(t testing.TB) testKeys {
	t.Helper()
	return testKeys{orderhub: testkit.Key(t, 0), client: testkit.Key(t, 1)}
}

// rigConfig is what a rig's orderhub is configured with.
type rigConfig struct {
	redisArgs      []string
	requestTimeout time.Duration // ORDERHUB_REQUEST_TIMEOUT
	lease          time.Duration // ORDERHUB_IDEMPOTENCY_LEASE
	// viaGate puts a gate (gate_test.go) between orderhub and Redis.
	viaGate bool
}

// rig is one redis-server, the orderhub process serving over it, and the
// partner that calls it. Nothing is shared between rigs.
type rig struct {
	t       *testing.T
	cfg     rigConfig
	redis   *redistest.Server
	bin     string
	dir     string   // configuration files and process logs
	env     []string // orderhub's whole environment
	starts  int
	hub     *hub  // the orderhub process in service
	gate    *gate // with viaGate
	partner *partner
}

func newRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	k := keys(t)
	r := &rig{t: t, cfg: cfg, bin: orderhubBinary.get(t), dir: t.TempDir()}
	r.redis = redistest.Start(t, cfg.redisArgs...)
	redisURL := r.redis.URL()
	if cfg.viaGate {
		r.gate = newGate(t, r.redis.Addr())
		redisURL = "redis://" + r.gate.addr() + "/0"
	}
	r.partner = newPartner(t, "reliability-client", k, checkEvery(true))

	// The partner, allowed every operation, its key as version 1.
	clientsFile := testkit.ClientsFile(t, testkit.Entry(t, r.partner.clientID, &k.client.PublicKey))
	keyFile := filepath.Join(r.dir, "orderhub-key.b64")
	priv, err := signature.MarshalPrivateKey(k.orderhub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only what is set here: a developer's own ORDERHUB_* variables must
	// not change what is tested.
	r.env = []string{
		"ORDERHUB_ADDR=127.0.0.1:0",
		"ORDERHUB_REDIS_URL=" + redisURL,
		"ORDERHUB_CLIENTS=" + clientsFile,
		"ORDERHUB_SIGNING_KEY=" + keyFile,
		"ORDERHUB_ADMIN_TOKEN=" + adminToken,
		"ORDERHUB_REQUEST_TIMEOUT=" + cfg.requestTimeout.String(),
		"ORDERHUB_IDEMPOTENCY_LEASE=" + cfg.lease.String(),
		// Requests are signed once and replayed as they were, possibly
		// minutes later in a soak run.
		"ORDERHUB_REQUEST_TIME_WINDOW=1h",
		"ORDERHUB_LOG_LEVEL=info",
	}
	r.startHub()
	return r
}

// startHub starts a new orderhub process over the rig's Redis and makes it
// the one in service.
func (r *rig) startHub() {
	r.t.Helper()
	r.starts++
	r.hub = startHub(r.t, r.bin, r.dir, fmt.Sprintf("orderhub-%d.log", r.starts), r.env)
}

// listeningURL reads the JSON line orderhub writes once it accepts
// connections: its msg is "listening", its url the address.
func listeningURL(line string) (string, bool) {
	var l struct{ Msg, URL string }
	if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "listening" {
		return "", false
	}
	return l.URL, true
}

// startWithin bounds how long orderhub may take to print that line.
const startWithin = 30 * time.Second

// hub is one orderhub process.
type hub struct {
	cmd     *exec.Cmd
	url     string
	logFile string
	exited  chan struct{} // closed once the process has been waited for
	drained chan struct{} // closed once its output is all read
}

// startHub starts bin in dir with env, its output going to logName in dir,
// and waits for the listening line. The process is killed when t ends; its
// log's tail is shown if t failed.
func startHub(t *testing.T, bin, dir, logName string, env []string) *hub {
	t.Helper()
	h := &hub{logFile: filepath.Join(dir, logName), exited: make(chan struct{}), drained: make(chan struct{})}
	logf, err := os.Create(h.logFile)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command(bin)
	h.cmd.Dir, h.cmd.Env = dir, env
	h.cmd.Stdout, h.cmd.Stderr = pw, pw
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting orderhub: %v", err)
	}
	pw.Close() // the child holds its own copy: EOF when it exits
	go func() {
		_ = h.cmd.Wait()
		close(h.exited)
	}()
	ready := make(chan string, 1)
	go func() {
		defer close(h.drained)
		defer logf.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if url, ok := listeningURL(line); ok {
				ready <- url
			}
		}
	}()
	t.Cleanup(func() {
		h.kill()
		// Built with -race under a race-enabled test: a report in the log
		// is a race in orderhub itself.
		if report := raceReport(h.logFile); report != "" {
			t.Errorf("%s: the race detector reports a data race in orderhub:\n%s", logName, report)
		} else if t.Failed() {
			t.Logf("%s (last lines):\n%s", logName, tail(h.logFile, 30))
		}
	})
	timeout := time.NewTimer(startWithin)
	defer timeout.Stop()
	select {
	case h.url = <-ready:
		return h
	case <-h.exited:
		<-h.drained
		t.Fatalf("orderhub exited before listening: %v\n%s", h.cmd.ProcessState, tail(h.logFile, 30))
	case <-timeout.C:
		t.Fatalf("orderhub did not print its listening line within %s\n%s", startWithin, tail(h.logFile, 30))
	}
	return nil
}

// kill sends SIGKILL (no graceful shutdown: a crash) and waits until the
// process is gone. Killing a dead process does nothing.
func (h *hub) kill() {
	_ = h.cmd.Process.Kill() // fails only when it has exited already
	<-h.exited
	<-h.drained
}

// alive reports whether the process is still running.
func (h *hub) alive() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// raceReport is the first race detector report in file, if any.
func raceReport(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	_, report, found := bytes.Cut(b, []byte("WARNING: DATA RACE"))
	if !found {
		return ""
	}
	lines := strings.SplitN(string(report), "\n", 60)
	return "WARNING: DATA RACE" + strings.Join(lines[:min(len(lines), 59)], "\n")
}

func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// poll calls cond every `every` until it reports true, an error, or within
// has passed: waiting for a real condition, never for a guessed time.
func poll(ctx context.Context, within, every time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not within %s; last error: %w", within, last)
			}
			return fmt.Errorf("not within %s", within)
		case <-tick.C:
		}
	}
}

// readyz answers orderhub's readiness probe's HTTP status.
func (r *rig) readyz(ctx context.Context) (int, time.Duration, error) {
	start := time.Now()
	res, err := r.partner.api(r.hub.url).GetReadyzWithResponse(ctx)
	if err != nil {
		return 0, time.Since(start), err
	}
	return res.StatusCode(), time.Since(start), nil
}

func (r *rig) healthz(ctx context.Context) (int, error) {
	res, err := r.partner.api(r.hub.url).GetHealthzWithResponse(ctx)
	if err != nil {
		return 0, err
	}
	return res.StatusCode(), nil
}

// waitReady polls /readyz until it answers 200.
func (r *rig) waitReady(ctx context.Context, within time.Duration) error {
	return poll(ctx, within, 20*time.Millisecond, func() (bool, error) {
		code, _, err := r.readyz(ctx)
		return code == http.StatusOK, err
	})
}

// sameBytes reports how b differs from a, the first final answer: HTTP
// status, body, and the signed headers. Empty when they are identical.
func sameBytes(a, b answer) string {
	var diffs []string
	if a.status != b.status {
		diffs = append(diffs, fmt.Sprintf("HTTP %d, first %d", b.status, a.status))
	}
	if !bytes.Equal(a.body, b.body) {
		diffs = append(diffs, fmt.Sprintf("body %s, first %s", b.body, a.body))
	}
	for _, h := range []string{"Response-Time", "Client-Id", "Signature"} {
		if got, want := strings.Join(b.header.Values(h), "|"), strings.Join(a.header.Values(h), "|"); got != want {
			diffs = append(diffs, fmt.Sprintf("%s %q, first %q", h, got, want))
		}
	}
	return strings.Join(diffs, "; ")
}
