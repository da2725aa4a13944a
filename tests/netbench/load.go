package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// call is one request ready to send, signed before the timed part: the
// caller's signing is not the server's cost and must not take its CPU.
type call struct {
	path   string
	header http.Header // read-only once signed: callers share it
	body   []byte
}

// answer is one sampled answer, checked (its signature too) after the
// timed part so that the check costs the measurement nothing.
type answer struct {
	path   string
	status int
	header http.Header
	body   []byte
}

// result is one cell's measurement.
type result struct {
	hist     histogram
	ok       uint64 // answers as expected
	errs     uint64 // transport errors and unexpected answers
	elapsed  time.Duration
	short    bool    // the signed requests ran out before the time was up
	offered  float64 // open loop: the scheduled rate
	firstErr string
	sample   *answer
}

func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok+r.errs) / r.elapsed.Seconds()
}

// target is one system under load: a base URL and a connection pool big
// enough that no caller waits for a connection.
type target struct {
	base *url.URL
	tr   *http.Transport
}

func newTarget(base string, conns int) (*target, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return &target{base: u, tr: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		// An open loop falling behind queues here, its latency still
		// counted, rather than opening thousands of connections.
		MaxConnsPerHost:    conns,
		IdleConnTimeout:    time.Minute,
		DisableCompression: true,
	}}, nil
}

func (t *target) close() { t.tr.CloseIdleConnections() }

// urls resolves each distinct path of calls once, outside the timed part.
func (t *target) urls(calls []call) map[string]*url.URL {
	m := map[string]*url.URL{}
	for _, c := range calls {
		if m[c.path] == nil {
			m[c.path] = t.base.ResolveReference(&url.URL{Path: c.path})
		}
	}
	return m
}

// send posts c and reads the whole answer into buf.
func (t *target) send(ctx context.Context, u *url.URL, c *call, buf *bytes.Buffer) (*http.Response, error) {
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Header:        c.header,
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Host:          u.Host,
	}).WithContext(ctx)
	res, err := t.tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(res.Body)
	res.Body.Close()
	return res, err
}

// check says whether an answer is the one wanted.
type check func(status int, body []byte) bool

// wantS accepts an S envelope, found without decoding: the check runs in
// the timed part, on the callers' share of the CPU.
func wantS(status int, body []byte) bool {
	return status == http.StatusOK && bytes.Contains(body, []byte(`"resultStatus":"S"`))
}

func anyAnswer(int, []byte) bool { return true }

// pool hands out calls: each once, or round and round when repeat is set.
type pool struct {
	calls  []call
	repeat bool
	next   atomic.Int64
	out    atomic.Bool // ran out
}

func (p *pool) take() (*call, bool) {
	i := p.next.Add(1) - 1
	if p.repeat {
		return &p.calls[i%int64(len(p.calls))], true
	}
	if i >= int64(len(p.calls)) {
		p.out.Store(true)
		return nil, false
	}
	return &p.calls[i], true
}

// window is a cell's timing: in an open loop, requests scheduled before
// from are warm-up, not counted; none starts after until.
type window struct {
	from, until time.Time
}

func newWindow(warm, d time.Duration) window {
	now := time.Now()
	return window{from: now.Add(warm), until: now.Add(warm + d)}
}

// closedLoop runs callers that each send the next call as soon as their
// previous one is answered, until the window ends or the calls run out.
// Every answer counts towards the rate; the latencies leave out each
// caller's first request, which waited for its connection.
func closedLoop(ctx context.Context, t *target, p *pool, callers int, w window, ok check) *result {
	urls := t.urls(p.calls)
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			var h histogram
			var good, bad uint64
			var firstErr string
			var sample *answer
			var buf bytes.Buffer
			for first := true; ctx.Err() == nil; first = false {
				t0 := time.Now()
				if !t0.Before(w.until) {
					break
				}
				c, more := p.take()
				if !more {
					break
				}
				r, err := t.send(ctx, urls[c.path], c, &buf)
				if !first { // the first one also opened the connection
					h.record(time.Since(t0))
				}
				switch {
				case err != nil:
					bad++
					if firstErr == "" {
						firstErr = err.Error()
					}
				case !ok(r.StatusCode, buf.Bytes()):
					bad++
					if firstErr == "" {
						firstErr = fmt.Sprintf("HTTP %d %s", r.StatusCode, truncate(buf.Bytes()))
					}
				default:
					good++
					if sample == nil {
						sample = &answer{path: c.path, status: r.StatusCode, header: r.Header, body: bytes.Clone(buf.Bytes())}
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.hist.merge(&h)
			res.ok += good
			res.errs += bad
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			if res.sample == nil {
				res.sample = sample
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(w.from)
	res.short = p.out.Load()
	return res
}

// openLoop sends at a fixed rate whatever the answers do, each request on
// its own goroutine, and counts each latency from the request's scheduled
// time, so that a queue building up in the server cannot hide.
func openLoop(ctx context.Context, t *target, p *pool, rate float64, w window, ok check) *result {
	urls := t.urls(p.calls)
	res := &result{offered: rate}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	end := w.until
	for i := 0; ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(w.until) {
			break
		}
		c, more := p.take()
		if !more {
			end = at // the rate is over the time requests were scheduled
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			var buf bytes.Buffer
			r, err := t.send(ctx, urls[c.path], c, &buf)
			lat := time.Since(at)
			if at.Before(w.from) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			res.hist.record(lat)
			switch {
			case err != nil:
				res.errs++
				if res.firstErr == "" {
					res.firstErr = err.Error()
				}
			case !ok(r.StatusCode, buf.Bytes()):
				res.errs++
				if res.firstErr == "" {
					res.firstErr = fmt.Sprintf("HTTP %d %s", r.StatusCode, truncate(buf.Bytes()))
				}
			default:
				res.ok++
				if res.sample == nil {
					res.sample = &answer{path: c.path, status: r.StatusCode, header: r.Header, body: bytes.Clone(buf.Bytes())}
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = end.Sub(w.from)
	res.short = p.out.Load()
	return res
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
