package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/redistest"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"ORDERHUB_DEV": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.RedisURL != "" || c.Retention != 72*time.Hour || c.Lease != 30*time.Second || c.MaxBodyBytes != 64<<10 ||
		!c.Dev || c.TimeWindow != 5*time.Minute || c.SigningKeyVersion != 1 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadConfigRetentionForever(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"ORDERHUB_IDEMPOTENCY_RETENTION": "never", "ORDERHUB_DEV": "1"}))
	if err != nil || c.Retention != 0 {
		t.Errorf("never: retention %v, err %v", c.Retention, err)
	}
}

func TestLoadConfigRefusesBadValues(t *testing.T) {
	dev := func(kv map[string]string) map[string]string { kv["ORDERHUB_DEV"] = "1"; return kv }
	for _, tc := range []struct {
		name  string
		kv    map[string]string
		names string // the variable the message must name
	}{
		{"retention below 25h", dev(map[string]string{"ORDERHUB_IDEMPOTENCY_RETENTION": "24h"}), "ORDERHUB_IDEMPOTENCY_RETENTION"},
		{"retention not a time", dev(map[string]string{"ORDERHUB_IDEMPOTENCY_RETENTION": "three days"}), "ORDERHUB_IDEMPOTENCY_RETENTION"},
		{"negative timeout", dev(map[string]string{"ORDERHUB_REQUEST_TIMEOUT": "-1s"}), "ORDERHUB_REQUEST_TIMEOUT"},
		{"shutdown shorter than a request", dev(map[string]string{"ORDERHUB_SHUTDOWN_TIMEOUT": "2s"}), "ORDERHUB_SHUTDOWN_TIMEOUT"},
		{"body limit too small", dev(map[string]string{"ORDERHUB_MAX_BODY_BYTES": "10"}), "ORDERHUB_MAX_BODY_BYTES"},
		{"log level", dev(map[string]string{"ORDERHUB_LOG_LEVEL": "loud"}), "ORDERHUB_LOG_LEVEL"},
		{"key version", dev(map[string]string{"ORDERHUB_SIGNING_KEY_VERSION": "0"}), "ORDERHUB_SIGNING_KEY_VERSION"},
		{"time window", dev(map[string]string{"ORDERHUB_REQUEST_TIME_WINDOW": "soon"}), "ORDERHUB_REQUEST_TIME_WINDOW"},
		{"earlier key without a version", dev(map[string]string{"ORDERHUB_SIGNING_KEY_EARLIER": "v1.pub"}), "ORDERHUB_SIGNING_KEY_EARLIER"},
		{"earlier key version twice", dev(map[string]string{"ORDERHUB_SIGNING_KEY_EARLIER": "1=a.pub,1=b.pub"}), "ORDERHUB_SIGNING_KEY_EARLIER"},
		{"dev flag", map[string]string{"ORDERHUB_DEV": "yes"}, "ORDERHUB_DEV"},
		{"faults flag", dev(map[string]string{"ORDERHUB_FAULTS": "on"}), "ORDERHUB_FAULTS"},
		{"no keys outside development", map[string]string{}, "ORDERHUB_SIGNING_KEY"},
		{"no clients file", map[string]string{"ORDERHUB_SIGNING_KEY": "key.pem"}, "ORDERHUB_CLIENTS"},
		{"no signing key, even with ORDERHUB_DEV", dev(map[string]string{"ORDERHUB_CLIENTS": "clients.yaml"}), "ORDERHUB_SIGNING_KEY"},
		{"rate limit without a unit", dev(map[string]string{"ORDERHUB_RATE_LIMIT_PER_CLIENT": "100"}), "ORDERHUB_RATE_LIMIT_PER_CLIENT"},
		{"rate limit per day", dev(map[string]string{"ORDERHUB_RATE_LIMIT_PER_CLIENT": "100/d"}), "ORDERHUB_RATE_LIMIT_PER_CLIENT"},
		{"rate limit of zero", dev(map[string]string{"ORDERHUB_RATE_LIMIT_GLOBAL": "0/s"}), "ORDERHUB_RATE_LIMIT_GLOBAL"},
		{"rate limit burst of zero", dev(map[string]string{"ORDERHUB_RATE_LIMIT_GLOBAL": "100/s,burst=0"}), "ORDERHUB_RATE_LIMIT_GLOBAL"},
		{"rate limit in words", dev(map[string]string{"ORDERHUB_RATE_LIMIT_GLOBAL": "100 per second"}), "ORDERHUB_RATE_LIMIT_GLOBAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(env(tc.kv))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("want a configuration error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("message %q does not name %s", err, tc.names)
			}
		})
	}
}

// TestRunRefusesBadConfig: what the service itself refuses is a
// configuration error too (exit 2), naming the variable at fault.
func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		kv    map[string]string
		names string // the variable the message must name
	}{
		{"redis url", map[string]string{"ORDERHUB_REDIS_URL": "http://nowhere"}, "ORDERHUB_REDIS_URL"},
		{"address", map[string]string{"ORDERHUB_ADDR": "127.0.0.1:notaport"}, "ORDERHUB_ADDR"},
		{"lease not above the request timeout", map[string]string{"ORDERHUB_IDEMPOTENCY_LEASE": "5s", "ORDERHUB_REQUEST_TIMEOUT": "5s"}, "ORDERHUB_IDEMPOTENCY_LEASE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.kv["ORDERHUB_DEV"], tc.kv["ORDERHUB_DEV_DIR"] = "1", dir
			err := run(context.Background(), nil, env(tc.kv), io.Discard, nil)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("want a configuration error (exit 2), got %v", err)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("message %q does not name %s", err, tc.names)
			}
		})
	}
	var ce *configError
	if err := run(context.Background(), []string{"serve"}, env(nil), io.Discard, nil); !errors.As(err, &ce) {
		t.Errorf("arguments: want a configuration error, got %v", err)
	}
}

// started is a run of orderhub on a free port, in development mode.
type started struct {
	base    string
	dir     string
	startup []string       // stdout up to the listening line
	lines   chan string    // stdout after the listening line
	reload  chan os.Signal // what main feeds from SIGHUP
	done    chan error
	cancel  context.CancelFunc
}

func start(t *testing.T, kv map[string]string) *started {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{"ORDERHUB_ADDR": "127.0.0.1:0", "ORDERHUB_ADMIN_TOKEN": "t", "ORDERHUB_DEV": "1", "ORDERHUB_DEV_DIR": dir}
	for k, v := range kv {
		all[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	s := &started{dir: dir, lines: make(chan string, 100), reload: make(chan os.Signal, 1), done: make(chan error, 1), cancel: cancel}
	go func() {
		s.done <- run(ctx, nil, env(all), w, s.reload)
		w.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	// Every start-up line is JSON, as a supervisor or another language's
	// harness reads them; the address is the "listening" line's url.
	sc := bufio.NewScanner(out)
	var dev bool
	for sc.Scan() {
		var line struct{ Msg, URL string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("a start-up line is not JSON: %q", sc.Text())
		}
		s.startup = append(s.startup, sc.Text())
		dev = dev || line.Msg == devSetupMessage
		if line.Msg == "listening" {
			s.base = line.URL
			break
		}
	}
	if s.base == "" || !dev {
		t.Fatalf("no development notice or listening line: %v", <-s.done)
	}
	go func() { // keep draining, so run never blocks on its log
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	return s
}

// inquire calls inquireOrderDetail signed as the development client and
// checks the answer's signature with orderhub's development key.
func (s *started) inquire(t *testing.T) (string, *http.Response) {
	t.Helper()
	body, res := s.inquireUnchecked(t)
	pubText, err := os.ReadFile(filepath.Join(s.dir, "orderhub-public.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.ParsePublicKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	if err := signature.VerifyResponse(res, []byte(body), pub); err != nil {
		t.Errorf("response signature: %v", err)
	}
	return body, res
}

// inquireUnchecked is inquire without the signature check.
func (s *started) inquireUnchecked(t *testing.T) (string, *http.Response) {
	t.Helper()
	res, err := s.inquireRaw(t)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return string(body), res
}

// inquireRaw sends the development client's signed inquiry.
func (s *started) inquireRaw(t *testing.T) (*http.Response, error) {
	t.Helper()
	keyText, err := os.ReadFile(filepath.Join(s.dir, "dev-client-private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := signature.ParsePrivateKey(keyText)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v2/pos/inquireOrderDetail", strings.NewReader(`{"requestOrderId":"nope"}`))
	req.Header.Set("Content-Type", "application/json")
	signer := &signature.Signer{ClientID: devClientID, KeyVersion: 1, Key: key}
	if err := signer.Edit(req.Context(), req); err != nil {
		t.Fatal(err)
	}
	return http.DefaultClient.Do(req)
}

// TestRunServesUntilCancelled starts the real wiring on a free port with the
// in-memory store and a generated development setup, calls it signed, and
// stops it as SIGTERM would.
func TestRunServesUntilCancelled(t *testing.T) {
	s := start(t, nil)
	res, err := http.Get(s.base + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()

	body, res := s.inquire(t)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"ORDER_NOT_EXIST"`) || res.Header.Get("Client-Id") != devClientID {
		t.Errorf("inquire: %d %s %v", res.StatusCode, body, res.Header)
	}

	// Fault rules are off unless ORDERHUB_FAULTS=1.
	if got := s.faultRuleStatus(t); got != http.StatusNotFound {
		t.Errorf("adding a fault rule without ORDERHUB_FAULTS: HTTP %d, want 404", got)
	}

	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	s.done <- nil // for Cleanup
	if _, err := http.Get(s.base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

// faultRuleStatus adds a fault rule through the operator API and returns
// the HTTP status.
func (s *started) faultRuleStatus(t *testing.T) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/ops/faults", strings.NewReader(`{"operation":"inquireOrderDetail","action":"dropBeforeProcessing","times":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestRunWithFaults: ORDERHUB_FAULTS=1 says so at start-up and turns the
// fault rules on.
func TestRunWithFaults(t *testing.T) {
	s := start(t, map[string]string{"ORDERHUB_FAULTS": "1"})
	if !slices.ContainsFunc(s.startup, func(l string) bool {
		return strings.Contains(l, `"level":"WARN"`) && strings.Contains(l, "ORDERHUB_FAULTS=1")
	}) {
		t.Errorf("no start-up warning of fault rules in %q", s.startup)
	}
	if got := s.faultRuleStatus(t); got != http.StatusCreated {
		t.Fatalf("adding a fault rule: HTTP %d, want 201", got)
	}
	// The rule drops the next inquiry, and nothing else: no answer at all.
	req, _ := http.NewRequest(http.MethodGet, s.base+"/healthz", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	res.Body.Close()
	if _, err := s.inquireRaw(t); err == nil {
		t.Error("the inquiry was answered despite the rule")
	}
	if _, res := s.inquire(t); res.StatusCode != http.StatusOK {
		t.Errorf("the next inquiry: HTTP %d", res.StatusCode)
	}
}

// TestRunReusesDevelopmentSetup: a second start keeps the keys of the first.
func TestRunReusesDevelopmentSetup(t *testing.T) {
	dir := t.TempDir()
	c1, k1, err := devSetup(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(k1)
	c2, k2, err := devSetup(dir, slog.New(slog.DiscardHandler))
	after, _ := os.ReadFile(k2)
	if err != nil || c1 != c2 || string(before) != string(after) {
		t.Errorf("second setup changed the keys (err %v)", err)
	}
}

// TestRunReloadsClients disables the development client in its file,
// sends a reload as main does on SIGHUP, and sees it refused once the
// reload is logged.
func TestRunReloadsClients(t *testing.T) {
	s := start(t, nil)
	if body, _ := s.inquire(t); !strings.Contains(body, "ORDER_NOT_EXIST") {
		t.Fatalf("before reload: %s", body)
	}
	file := filepath.Join(s.dir, "clients.yaml")
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc clients.File
	if err := yaml.Unmarshal(text, &doc); err != nil || len(doc.Clients) != 1 {
		t.Fatalf("the development clients file: %v %+v", err, doc)
	}
	doc.Clients[0].Disabled = true
	disabled, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, disabled, 0o600); err != nil {
		t.Fatal(err)
	}
	s.reload <- syscall.SIGHUP
	for line := range s.lines {
		if strings.Contains(line, "clients reloaded") {
			break
		}
		if strings.Contains(line, "clients reload failed") {
			t.Fatal(line)
		}
	}
	// A disabled client is no longer one: refused unsigned.
	if body, res := s.inquireUnchecked(t); !strings.Contains(body, "ACCESS_DENIED") || res.Header.Get("Signature") != "" {
		t.Errorf("after reload: %s, Signature %q", body, res.Header.Get("Signature"))
	}
}

// TestRunOnRedisCluster runs the binary's wiring against a local cluster,
// named by ORDERHUB_REDIS_URL in the form redistest.Cluster.URL gives.
func TestRunOnRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	s := start(t, map[string]string{"ORDERHUB_REDIS_URL": c.URL()})

	req, err := http.NewRequest(http.MethodPut, s.base+"/ops/orders/cluster-order-1",
		strings.NewReader(`{"posOrderId":"pos-1","orderStatus":"PREPARING"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"PREPARING"`) {
		t.Fatalf("PUT order: HTTP %d %s", res.StatusCode, body)
	}
	// The order is in the cluster, not in memory.
	var keys atomic.Int64 // ForEachMaster runs f on the masters concurrently
	err = c.Client(t).ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		keys.Add(n)
		return err
	})
	if err != nil || keys.Load() == 0 {
		t.Errorf("keys in the cluster: %d, %v; want the order", keys.Load(), err)
	}
	if body, _ := s.inquire(t); !strings.Contains(body, "ORDER_NOT_EXIST") {
		t.Errorf("inquire: %s", body)
	}

	// Fault rules are off unless ORDERHUB_FAULTS=1.
	if got := s.faultRuleStatus(t); got != http.StatusNotFound {
		t.Errorf("adding a fault rule without ORDERHUB_FAULTS: HTTP %d, want 404", got)
	}

	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	s.done <- nil // for Cleanup
}

// TestRunAnswersASlowBody408: a caller that sends its headers and then
// holds back its body is at fault: once the request timeout has passed it
// gets HTTP 408 with the PARAM_ILLEGAL envelope, not a U, and no ERROR line.
func TestRunAnswersASlowBody408(t *testing.T) {
	s := start(t, map[string]string{"ORDERHUB_REQUEST_TIMEOUT": "1s"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One byte of a promised 100, then nothing: the server's read deadline
	// ends the wait, not this test.
	if _, err := fmt.Fprintf(conn, "POST /v2/pos/inquireOrderDetail HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"resultCode":"PARAM_ILLEGAL"`) {
		t.Errorf("HTTP %d %s, want 408 PARAM_ILLEGAL", res.StatusCode, body)
	}
	s.cancel()
	<-s.done
	s.done <- nil // for Cleanup
	for {
		select {
		case line := <-s.lines:
			if strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("a slow caller logged as a server fault: %s", line)
			}
			continue
		default:
		}
		break
	}
}
