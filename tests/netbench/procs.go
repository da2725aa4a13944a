package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// proc is a server process the bench started and stops.
type proc struct {
	name   string
	cmd    *exec.Cmd
	url    string
	log    string // where its stdout and stderr go
	exited chan struct{}
}

// start runs bin with its output in a log file of dir (as an operator runs
// a service: the harness reads no pipe, so it spends no CPU on the request
// log) in a process group of its own, so that stopping it stops its
// children too (Prism's node workers).
func start(dir, name, bin string, args, env []string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid is the process id, whose /proc entry gives the RSS.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process group, and SIGKILL when it has not
// exited within a few seconds.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
	}
}

// waitListening reads the log until the JSON line {"msg":"listening",
// "url":…} that orderhub (and the baselines) print on start-up.
func (p *proc) waitListening(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if url, ok := listeningURL(p.log); ok {
			p.url = url
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before listening:\n%s", p.name, tail(p.log))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not listening after %s:\n%s", p.name, within, tail(p.log))
		}
	}
}

func listeningURL(logPath string) (string, bool) {
	f, err := os.Open(logPath)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct{ Msg, URL string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" && line.URL != "" {
			return line.URL, true
		}
	}
	return "", false
}

// waitHTTP polls url until it answers at all (Prism prints no JSON line).
func (p *proc) waitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited:\n%s", p.name, tail(p.log))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer after %s: %v\n%s", p.name, within, err, tail(p.log))
		}
	}
}

// tail is the end of a log file, for error messages.
func tail(logPath string) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes and, when
// reset is set, starts a new peak from the current RSS (clear_refs 5), so
// that each cell reports its own.
func peakRSS(pid int, reset bool) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	var kb int64 = -1
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
		}
	}
	if kb < 0 {
		return 0, errors.New("no VmHWM in /proc/pid/status")
	}
	if reset {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			return 0, fmt.Errorf("reset the peak RSS: %w", err)
		}
	}
	return kb << 10, nil
}

// redisNode is a throwaway redis-server of one orderhub.
type redisNode struct {
	proc *proc
	addr string
	c    *redis.Client
}

func startRedis(dir, name, bin string) (*redisNode, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	p, err := start(dir, name, bin, []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", data,
	}, nil)
	if err != nil {
		return nil, err
	}
	r := &redisNode{proc: p, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	r.c = redis.NewClient(&redis.Options{Addr: r.addr, PoolSize: 1})
	deadline := time.Now().Add(10 * time.Second)
	for r.c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server on %s does not answer:\n%s", r.addr, tail(p.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r, nil
}

// procOrNil is the redis-server process; nil without one.
func (r *redisNode) procOrNil() *proc {
	if r == nil {
		return nil
	}
	return r.proc
}

func (r *redisNode) stop() {
	if r == nil {
		return
	}
	_ = r.c.Close()
	r.proc.stop()
}

// redisStats is what one INFO call says: calls by command, and read events
// (total_reads_processed: one per batch of commands a client sends and
// waits on, so a pipeline counts once — a round trip).
type redisStats struct {
	calls map[string]uint64
	reads uint64
}

func (r *redisNode) stats(ctx context.Context) (redisStats, error) {
	text, err := r.c.Info(ctx, "commandstats", "stats").Result()
	if err != nil {
		return redisStats{}, err
	}
	s := redisStats{calls: map[string]uint64{}}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			name, fields, _ := strings.Cut(rest, ":")
			for f := range strings.SplitSeq(fields, ",") {
				if v, ok := strings.CutPrefix(f, "calls="); ok {
					s.calls[name], _ = strconv.ParseUint(v, 10, 64)
				}
			}
		} else if v, ok := strings.CutPrefix(line, "total_reads_processed:"); ok {
			s.reads, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return s, nil
}

// minus is what happened between before and s, less the bench's own INFO
// call (one command, one read).
func (s redisStats) minus(before redisStats) (cmds map[string]uint64, reads uint64) {
	cmds = map[string]uint64{}
	for name, n := range s.calls {
		if d := n - before.calls[name]; d > 0 && name != "info" {
			cmds[name] = d
		}
	}
	if s.reads > before.reads {
		reads = s.reads - before.reads - 1
	}
	return cmds, reads
}

// signatureCounts reads orderhub_signatures_total from /metrics: answers
// RSA-signed, and answers whose signature was reused.
func signatureCounts(ctx context.Context, base string) (signed, reused float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for how, dst := range map[string]*float64{"signed": &signed, "reused": &reused} {
			if v, ok := strings.CutPrefix(line, `orderhub_signatures_total{how="`+how+`"} `); ok {
				*dst, _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return signed, reused, sc.Err()
}
