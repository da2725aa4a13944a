// Package redistest starts a throwaway redis-server for a test: on a free
// port, without persistence, in the test's temporary directory, and killed
// when the test ends. Tests that inject faults stop and restart it.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// readyWithin bounds how long a starting server may take to answer PING.
const readyWithin = 10 * time.Second

// Server is a redis-server process owned by one test.
type Server struct {
	t    testing.TB
	bin  string
	port int
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
}

// Start starts redis-server with extraArgs after the defaults (later
// arguments win) and waits until it answers PING. A missing binary fails the
// test: a skipped store test would pass silently on a bare machine.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: run scripts/ensure-redis.sh")
	}
	ports, err := freePorts(2)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	port := ports[0]
	s := &Server{
		t:    t,
		bin:  bin,
		port: port,
		args: append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
			// A node with --cluster-enabled also listens on its bus port,
			// port+10000 unless named: picked free like the other, so it
			// cannot meet another test's server (ignored otherwise).
			"--cluster-port", strconv.Itoa(ports[1]),
		}, extraArgs...),
	}
	// Registered after TempDir, so it runs first: the server stops before
	// its directory is removed.
	t.Cleanup(s.Stop)
	s.start()
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is a redis:// URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a client of the server, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (like a crash: no shutdown save) and waits for the
// process to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // fails only if it has exited already
	<-s.exited
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same port
// with the same arguments and directory, then waits until it is ready.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause freezes the server with SIGSTOP, like a hung host: the kernel still
// accepts connections, but nothing is answered until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v to a stopped server", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, s.args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	if err := s.waitReady(); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		s.cmd = nil
		s.t.Fatalf("redistest: redis-server on %s: %v\n%s", s.Addr(), err, out.String())
	}
}

// waitReady polls PING until the server answers PONG (not LOADING, say),
// the process exits, or readyWithin has passed.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyWithin)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(s.Addr())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-s.exited:
			return errors.New("exited before it was ready")
		case <-tick.C:
		}
	}
}

// ping sends one PING over a fresh connection and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// syncBuffer collects the server's output, written by exec's copying
// goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// StartReplica starts a redis-server replicating master (REPLICAOF), with
// extraArgs after the defaults, and waits until it has synchronised and
// receives the master's writes. Pause it to hold back the master's WAIT. The
// master starts the synchronisation at once (repl-diskless-sync-delay 0),
// not after Redis' default 5 s wait for more replicas.
func StartReplica(t testing.TB, master *Server, extraArgs ...string) *Server {
	t.Helper()
	err := onNode(master.Addr(), func(c *redis.Client) error {
		return c.ConfigSet(context.Background(), "repl-diskless-sync-delay", "0").Err()
	})
	if err != nil {
		t.Fatalf("redistest: CONFIG SET on %s: %v", master.Addr(), err)
	}
	args := append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}, extraArgs...)
	r := Start(t, args...)
	// Online on the master is not enough: the master streams writes to a
	// replica only after its first acknowledgement, which a replica sends
	// once a second; until then a WAIT waits. So, once it is online, a
	// write on the master (PUBLISH: replicated on a single node, and it
	// leaves no key) and the replica's offset past it.
	online := fmt.Sprintf("port=%d,state=online", r.port)
	var published int64
	err = Poll(readyWithin, func() error {
		return onNode(master.Addr(), func(c *redis.Client) error {
			ctx := context.Background()
			info, err := c.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, online) {
				return errors.New("the master does not list the replica online")
			}
			if err := c.Publish(ctx, "redistest:replica", "synchronised").Err(); err != nil {
				return err
			}
			published, err = replOffset(ctx, c, "master_repl_offset")
			return err
		})
	})
	if err == nil {
		err = Poll(readyWithin, func() error {
			return onNode(r.Addr(), func(c *redis.Client) error {
				got, err := replOffset(context.Background(), c, "slave_repl_offset")
				if err == nil && got < published {
					err = fmt.Errorf("the replica is at offset %d, its master at %d", got, published)
				}
				return err
			})
		})
	}
	if err != nil {
		t.Fatalf("redistest: replica %s of %s: %v", r.Addr(), master.Addr(), err)
	}
	return r
}

// replOffset reads a replication offset (field) from INFO replication.
func replOffset(ctx context.Context, c *redis.Client, field string) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO replication has no %s", field)
}
