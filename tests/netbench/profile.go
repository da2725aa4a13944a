package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// listeningField is a field of a process's "listening" line.
func listeningField(logPath, field string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "listening" {
			s, _ := line[field].(string)
			return s
		}
	}
	return ""
}

// buildCrypto is the crypto label of orderhub_build_info on /metrics.
func buildCrypto(ctx context.Context, base string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return ""
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "orderhub_build_info{") {
			continue
		}
		_, rest, ok := strings.Cut(line, `crypto="`)
		if !ok {
			return ""
		}
		v, _, _ := strings.Cut(rest, `"`)
		return v
	}
	return ""
}

// pprofAddr is the address the bench gave orderhub's pprof listener, from
// its environment; "" when none.
func pprofAddr(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, res.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// perfReport writes perf's profile by symbol twice: self time (where the
// CPU is spent) and time including callees (which of orderhub's steps
// spends it).
func perfReport(ctx context.Context, perf, data, path string) error {
	var all []byte
	for _, args := range [][]string{
		{"--no-children", "--percent-limit", "0.3"},
		{"--children", "--percent-limit", "1.5"},
	} {
		out, err := exec.CommandContext(ctx, perf, append([]string{"report", "-i", data, "--sort", "symbol", "--stdio", "-g", "none"}, args...)...).Output()
		if err != nil {
			return err
		}
		all = append(all, out...)
	}
	return os.WriteFile(path, all, 0o644)
}

// pprofTop writes the profile's functions by time including callees, the
// view that says which of orderhub's steps the CPU goes to.
func pprofTop(ctx context.Context, profile, path string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, gobin, "tool", "pprof", "-top", "-cum", "-nodecount=80", profile).Output()
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// sanitize makes a scenario name a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '_'
	}, s)
}
