package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.RedisURL != "" || c.Retention != 72*time.Hour || c.Lease != 30*time.Second || c.MaxBodyBytes != 64<<10 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadConfigRetentionForever(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"ORDERHUB_IDEMPOTENCY_RETENTION": "never"}))
	if err != nil || c.Retention != 0 {
		t.Errorf("never: retention %v, err %v", c.Retention, err)
	}
}

func TestLoadConfigRefusesBadValues(t *testing.T) {
	for name, kv := range map[string]map[string]string{
		"retention below 25h":   {"ORDERHUB_IDEMPOTENCY_RETENTION": "24h"},
		"retention not a time":  {"ORDERHUB_IDEMPOTENCY_RETENTION": "three days"},
		"lease not above limit": {"ORDERHUB_IDEMPOTENCY_LEASE": "5s", "ORDERHUB_REQUEST_TIMEOUT": "5s"},
		"negative timeout":      {"ORDERHUB_REQUEST_TIMEOUT": "-1s"},
		"body limit too small":  {"ORDERHUB_MAX_BODY_BYTES": "10"},
		"log level":             {"ORDERHUB_LOG_LEVEL": "loud"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(env(kv))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("want a configuration error, got %v", err)
			}
			for k := range kv {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("message %q does not name %s", err, k)
				}
			}
		})
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	for name, kv := range map[string]map[string]string{
		"redis url": {"ORDERHUB_REDIS_URL": "http://nowhere"},
		"address":   {"ORDERHUB_ADDR": "127.0.0.1:notaport"},
	} {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), nil, env(kv), io.Discard)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("want a configuration error (exit 2), got %v", err)
			}
		})
	}
	var ce *configError
	if err := run(context.Background(), []string{"serve"}, env(nil), io.Discard); !errors.As(err, &ce) {
		t.Errorf("arguments: want a configuration error, got %v", err)
	}
}

// TestRunServesUntilCancelled starts the real wiring on a free port with the
// in-memory store, calls it, and stops it as SIGTERM would.
func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"ORDERHUB_ADDR": "127.0.0.1:0", "ORDERHUB_ADMIN_TOKEN": "t"}), w)
		w.Close()
	}()
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatalf("no output: %v", <-done)
	}
	first := lines.Text()
	go func() { // keep draining the log so run never blocks on it
		for lines.Scan() {
		}
	}()
	url, ok := strings.CutPrefix(strings.Fields(first)[3], "http://")
	if !ok || !strings.Contains(first, "store: memory") {
		t.Fatalf("unexpected first line %q", first)
	}
	base := "http://" + url

	res, err := http.Get(base + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()

	req, _ := http.NewRequest(http.MethodPost, base+"/v2/pos/inquireOrderDetail", strings.NewReader(`{"requestOrderId":"nope"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Client-Id", "c1")
	req.Header.Set("Request-Time", "2024-01-01T00:00:00+08:00")
	req.Header.Set("Signature", "algorithm=RSA256, keyVersion=1, signature=x")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ORDER_NOT_EXIST"`) || res.Header.Get("Client-Id") != "c1" {
		t.Errorf("inquire: %d %s %v", res.StatusCode, body, res.Header)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}
