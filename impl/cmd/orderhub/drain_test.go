package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// guard bounds every wait of these tests, so that a broken drain fails them
// instead of hanging the test binary; nothing waits for it to pass.
const guard = 10 * time.Second

// drainRig is serve running a handler whose /block requests wait for the
// test: started tells the test such a request is in the handler, release
// lets it answer.
type drainRig struct {
	addr     string
	cancel   context.CancelFunc
	served   chan error    // serve's result
	draining chan struct{} // closed when shutdown has begun (listener closed)
	started  chan struct{} // one value per /block request in the handler
	release  chan struct{} // closed to let /block requests answer
	// releaseOne lets one /block request answer per value sent.
	releaseOne chan struct{}
	ended      chan string   // how each /block request ended: "released" or "cancelled"
	logs       *lockedBuffer // what serve logged
}

// lockedBuffer is a bytes.Buffer safe to write from serve and read from
// the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// line returns the JSON log line whose msg is msg, decoded; it fails the
// test when there is none.
func (b *lockedBuffer) line(t *testing.T, msg string) map[string]any {
	t.Helper()
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()
	for l := range strings.Lines(text) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", l)
		}
		if m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no %q line in the log:\n%s", msg, text)
	return nil
}

// wantCounts checks the counts of a shutdown line.
func wantCounts(t *testing.T, line map[string]any, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s line: %s = %v, want %v (%v)", line["msg"], k, line[k], v, line)
		}
	}
}

// answer is the full body of a released /block request: large enough to
// take several writes.
var answer = strings.Repeat("orderhub drains in-flight requests. ", 4096)

func startDrainRig(t *testing.T, grace time.Duration) *drainRig {
	t.Helper()
	r := &drainRig{
		served:     make(chan error, 1),
		draining:   make(chan struct{}),
		started:    make(chan struct{}, 10),
		release:    make(chan struct{}),
		releaseOne: make(chan struct{}),
		ended:      make(chan string, 10),
		logs:       &lockedBuffer{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/quick", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "quick") })
	mux.HandleFunc("/block", func(w http.ResponseWriter, req *http.Request) {
		r.started <- struct{}{}
		select {
		case <-r.release:
		case <-r.releaseOne:
		case <-req.Context().Done():
			r.ended <- "cancelled"
			return
		}
		// Written in pieces after the drain began: all of it must arrive.
		for rest := answer; rest != ""; {
			n := min(len(rest), 4096)
			_, _ = io.WriteString(w, rest[:n])
			rest = rest[n:]
		}
		r.ended <- "released"
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: mux}
	// Shutdown closes the listeners before it runs these hooks.
	srv.RegisterOnShutdown(func() { close(r.draining) })
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	log := slog.New(slog.NewJSONHandler(r.logs, nil))
	go func() { r.served <- serve(ctx, srv, ln, grace, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.release:
		default:
			close(r.release)
		}
	})
	return r
}

// wait receives from ch or fails the test after guard.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("still waiting after %s for %s", guard, what)
		panic("unreachable")
	}
}

// get sends GET path on a fresh connection of its own; the result comes on
// the channel.
type result struct {
	res  *http.Response
	body string
	err  error
}

func (r *drainRig) get(path string) <-chan result {
	out := make(chan result, 1)
	go func() {
		// A transport of its own: no connection shared with other requests.
		c := &http.Client{Transport: &http.Transport{}}
		res, err := c.Get("http://" + r.addr + path)
		if err != nil {
			out <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		out <- result{res: res, body: string(b), err: err}
	}()
	return out
}

// TestDrainFinishesInFlightRequests: a request under way when shutdown
// begins gets its whole answer; meanwhile a new connection is refused and
// an idle keep-alive connection is closed rather than served; then serve
// returns without error.
func TestDrainFinishesInFlightRequests(t *testing.T) {
	r := startDrainRig(t, time.Minute)

	// A keep-alive connection, served once and idle now.
	idle, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idleReader := bufio.NewReader(idle)
	if _, err := io.WriteString(idle, "GET /quick HTTP/1.1\r\nHost: orderhub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(idleReader, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "quick" || res.Close {
		t.Fatalf("keep-alive request: %q, %v, close %v", b, err, res.Close)
	}

	inFlight := r.get("/block")
	wait(t, r.started, "the in-flight request to reach the handler")
	r.cancel()
	wait(t, r.draining, "shutdown to begin")

	// (2) After shutdown began: a new connection is refused...
	if c, err := net.Dial("tcp", r.addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("new connection after shutdown began: %v, want connection refused", err)
	}
	// ...and the idle keep-alive connection is closed by the server, with
	// nothing sent on it.
	_ = idle.SetReadDeadline(time.Now().Add(guard))
	if n, err := idleReader.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle keep-alive connection after shutdown began: read %d bytes, %v; want EOF", n, err)
	}

	// (1) The request started before shutdown completes, in full.
	select {
	case err := <-r.served:
		t.Fatalf("serve returned %v with a request in flight", err)
	default:
	}
	close(r.release)
	got := wait(t, inFlight, "the in-flight request's answer")
	if got.err != nil {
		t.Fatalf("in-flight request: %v", got.err)
	}
	if got.res.StatusCode != http.StatusOK || got.body != answer {
		t.Errorf("in-flight request: HTTP %d, %d of %d bytes", got.res.StatusCode, len(got.body), len(answer))
	}
	if !got.res.Close {
		t.Error("in-flight answer does not say Connection: close: the client would reuse a closing connection")
	}
	if how := wait(t, r.ended, "the handler to end"); how != "released" {
		t.Errorf("handler %s, want released", how)
	}
	if err := wait(t, r.served, "serve to return"); err != nil {
		t.Errorf("serve after a complete drain: %v", err)
	}

	// The log says what the drain found and did: the idle connection's
	// request had finished before, so one request was in flight.
	wantCounts(t, r.logs.line(t, "shutting down"), map[string]float64{"inFlight": 1})
	stopped := r.logs.line(t, "stopped")
	wantCounts(t, stopped, map[string]float64{"inFlight": 1, "drained": 1, "cutOff": 0})
	if stopped["level"] != "INFO" {
		t.Errorf("stopped line at %v, want INFO: nothing was cut off", stopped["level"])
	}
	if took, err := time.ParseDuration(fmt.Sprint(stopped["took"])); err != nil || took < 0 {
		t.Errorf("stopped line: took %v: %v", stopped["took"], err)
	}
}

// TestDrainGraceExpires: a request still running when the grace period
// ends makes serve return an error that says so, without waiting for the
// handler; the request is cut off and its handler's context cancelled.
func TestDrainGraceExpires(t *testing.T) {
	const grace = 50 * time.Millisecond
	r := startDrainRig(t, grace)
	inFlight := r.get("/block")
	wait(t, r.started, "the request to reach the handler")
	r.cancel()

	// The handler is never released: serve must return regardless.
	err := wait(t, r.served, "serve to give up after the grace period")
	if err == nil || !strings.Contains(err.Error(), "in flight") || !strings.Contains(err.Error(), grace.String()) {
		t.Errorf("serve: %v; want an error naming the requests in flight and the %s grace", err, grace)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("serve: %v; want it to wrap context.DeadlineExceeded", err)
	}
	if got := wait(t, inFlight, "the cut-off request to fail"); got.err == nil {
		t.Errorf("cut-off request answered HTTP %d %d bytes; want a transport error", got.res.StatusCode, len(got.body))
	}
	if how := wait(t, r.ended, "the handler to see its request cancelled"); how != "cancelled" {
		t.Errorf("handler %s, want cancelled", how)
	}
	if !strings.Contains(err.Error(), "1 of 1 requests") {
		t.Errorf("serve: %v; want it to count the request cut off", err)
	}

	// serve logged the cut-off before it returned.
	wantCounts(t, r.logs.line(t, "shutting down"), map[string]float64{"inFlight": 1})
	stopped := r.logs.line(t, "stopped")
	wantCounts(t, stopped, map[string]float64{"inFlight": 1, "drained": 0, "cutOff": 1})
	if stopped["level"] != "WARN" {
		t.Errorf("stopped line at %v, want WARN: a request was cut off", stopped["level"])
	}
	if took, err := time.ParseDuration(fmt.Sprint(stopped["took"])); err != nil || took < grace {
		t.Errorf("stopped line: took %v (%v), want at least the %s grace", stopped["took"], err, grace)
	}
}

// TestDrainCountsMixed: of two requests in flight, the one that finishes
// within the grace period is drained, the other cut off.
func TestDrainCountsMixed(t *testing.T) {
	// Ample time for the released request to write its answer: were it
	// still writing when the grace ends, it would count as cut off.
	const grace = time.Second
	r := startDrainRig(t, grace)
	a := r.get("/block")
	wait(t, r.started, "the first request to reach the handler")
	b := r.get("/block")
	wait(t, r.started, "the second request to reach the handler")
	r.cancel()
	wait(t, r.draining, "shutdown to begin")
	// One answer is let through: a single value, not the close that
	// releases every request.
	r.releaseOne <- struct{}{}
	if err := wait(t, r.served, "serve to give up after the grace period"); err == nil {
		t.Error("serve: no error with a request cut off")
	}
	results := []result{wait(t, a, "the first request"), wait(t, b, "the second request")}
	var answered int
	for _, res := range results {
		if res.err == nil && res.body == answer {
			answered++
		}
	}
	if answered != 1 {
		t.Errorf("%d requests answered in full, want 1", answered)
	}
	wantCounts(t, r.logs.line(t, "stopped"), map[string]float64{"inFlight": 2, "drained": 1, "cutOff": 1})
}
