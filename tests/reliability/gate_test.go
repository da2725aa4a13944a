package reliability

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"github.com/orderhub/orderhub/impl/store"
)

// gate is a TCP proxy between orderhub and redis-server that hangs on cue,
// at a point no signal can hit reliably: once orderhub sends a command
// containing the trigger bytes (after letting skip of them pass), the gate
// stops passing bytes either way, on every connection, new ones included,
// as a hung Redis host does. It holds what it has read: open passes it on,
// so Redis runs the held commands late, as a Redis that resumes does; cut
// drops it with the connections, so the held commands never ran.
type gate struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cond    *sync.Cond
	trigger []byte // nil: never hangs
	skip    int    // occurrences of trigger still to let through
	hung    bool
	tripped chan struct{} // closed when the trigger fires
	conns   map[net.Conn]bool
	closed  bool
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, conns: map[net.Conn]bool{}}
	g.cond = sync.NewCond(&g.mu)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.serve()
	}()
	t.Cleanup(func() {
		g.close()
		<-done
	})
	return g
}

// addr is where orderhub connects instead of Redis.
func (g *gate) addr() string { return g.ln.Addr().String() }

// hangOn arms the gate: it hangs when the skip+1-th command containing
// trigger (shorter than 256 bytes) is sent. The returned channel is closed
// when it does.
func (g *gate) hangOn(trigger []byte, skip int) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trigger, g.skip, g.tripped = trigger, skip, make(chan struct{})
	return g.tripped
}

// open disarms the gate and lets everything held through.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trigger, g.hung = nil, false
	g.cond.Broadcast()
}

// cut drops what the gate holds, closing every connection, and disarms
// it: orderhub reconnects through it afresh.
func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		_ = c.Close()
	}
	clear(g.conns)
	g.trigger, g.hung = nil, false
	g.cond.Broadcast()
}

func (g *gate) close() {
	_ = g.ln.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.hung = true, false
	for c := range g.conns {
		_ = c.Close()
	}
	g.cond.Broadcast()
}

func (g *gate) serve() {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		client, err := g.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial("tcp", g.target)
		if err != nil {
			_ = client.Close() // Redis is down: so is the connection
			continue
		}
		if !g.track(client, server) {
			return
		}
		wg.Go(func() { g.pipe(client, server, true) })
		wg.Go(func() { g.pipe(server, client, false) })
	}
}

func (g *gate) track(conns ...net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range conns {
		if g.closed {
			_ = c.Close()
			continue
		}
		g.conns[c] = true
	}
	return !g.closed
}

// pipe copies from → to; toServer is orderhub's direction, where the
// trigger is looked for. The tail of the previous read is kept so that a
// trigger split across two reads is still found.
func (g *gate) pipe(from, to net.Conn, toServer bool) {
	defer func() {
		_ = from.Close()
		_ = to.Close()
	}()
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := from.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if !g.wait(toServer, len(tail), append(tail, chunk...)) {
				return
			}
			if _, werr := to.Write(chunk); werr != nil {
				return
			}
			tail = append(tail[:0], chunk[max(0, n-256):]...)
		}
		if err != nil {
			return // EOF or closed: the other side goes too
		}
	}
}

// wait counts the occurrences of the trigger in seen that end past the
// first old bytes (the tail of the previous read, already counted), trips
// the gate when they exceed skip, then blocks while the gate is hung. It
// reports false once the gate is closed.
func (g *gate) wait(toServer bool, old int, seen []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if toServer && !g.hung && g.trigger != nil {
		for i := 0; ; {
			j := bytes.Index(seen[i:], g.trigger)
			if j < 0 {
				break
			}
			i += j + 1
			if i-1+len(g.trigger) <= old {
				continue // seen with the previous read
			}
			if g.skip > 0 {
				g.skip--
				continue
			}
			g.hung = true
			close(g.tripped)
			break
		}
	}
	for g.hung && !g.closed {
		g.cond.Wait()
	}
	return !g.closed
}

// commitTrigger arms g to hang on n's commit: the key of n's idempotency
// record (store.RecordKey) is named first by the claim that starts
// the request, which passes, and next by the commit that writes the effect
// and completes the record together. Redis must have the scripts cached
// already (an earlier request ran them): a NOSCRIPT retry would name the
// key once more.
func (g *gate) commitTrigger(clientID string, n *note) <-chan struct{} {
	k := store.Key{ClientID: clientID, RequestID: n.requestID}
	switch n.path {
	case pathCompletion:
		k.Op, k.Scope, k.ScopeID = "notifyOrderCompletion", store.ScopeOrder, n.orderID
	case pathAudit:
		k.Op, k.Scope, k.ScopeID = "notifyDeliveryAuditResult", store.ScopeTrade, n.tradeID
	}
	return g.hangOn([]byte(store.RecordKey(k)), 1)
}
