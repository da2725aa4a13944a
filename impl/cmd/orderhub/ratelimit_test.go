package main

import (
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/tests/redistest"
)

func TestLoadConfigRateLimits(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"ORDERHUB_DEV": "1"}))
	if err != nil || !c.RateLimitPerClient.IsZero() || !c.RateLimitGlobal.IsZero() {
		t.Errorf("unset: %+v %+v (%v), want no limits", c.RateLimitPerClient, c.RateLimitGlobal, err)
	}
	c, err = loadConfig(env(map[string]string{"ORDERHUB_DEV": "1",
		"ORDERHUB_RATE_LIMIT_PER_CLIENT": "100/s,burst=200", "ORDERHUB_RATE_LIMIT_GLOBAL": "6000/m"}))
	if err != nil ||
		c.RateLimitPerClient != (ratelimit.Limit{Rate: 100, Period: time.Second, Burst: 200}) ||
		c.RateLimitGlobal != (ratelimit.Limit{Rate: 6000, Period: time.Minute, Burst: 6000}) {
		t.Errorf("set: %+v %+v (%v)", c.RateLimitPerClient, c.RateLimitGlobal, err)
	}
}

// wantCode fails unless body carries the result code.
func wantCode(t *testing.T, body, code string) {
	t.Helper()
	if !strings.Contains(body, `"resultCode":"`+code+`"`) {
		t.Errorf("answer %s, want %s", body, code)
	}
}

// TestRunRateLimitsInProcess: without Redis, the limit holds in the process.
func TestRunRateLimitsInProcess(t *testing.T) {
	s := start(t, map[string]string{"ORDERHUB_RATE_LIMIT_PER_CLIENT": "1/h"})
	body, _ := s.inquire(t)
	wantCode(t, body, "ORDER_NOT_EXIST")
	body, _ = s.inquire(t) // signed: inquire checks it
	wantCode(t, body, "REQUEST_TRAFFIC_EXCEED_LIMIT")
}

// TestRunRateLimitsThroughRedis: two orderhub processes over one Redis
// share the development client's quota.
func TestRunRateLimitsThroughRedis(t *testing.T) {
	url := redistest.Start(t).URL()
	kv := map[string]string{"ORDERHUB_REDIS_URL": url, "ORDERHUB_RATE_LIMIT_PER_CLIENT": "2/h"}
	one, two := start(t, kv), start(t, kv)
	body, _ := one.inquire(t)
	wantCode(t, body, "ORDER_NOT_EXIST")
	body, _ = two.inquire(t)
	wantCode(t, body, "ORDER_NOT_EXIST")
	body, _ = one.inquire(t)
	wantCode(t, body, "REQUEST_TRAFFIC_EXCEED_LIMIT")
	body, _ = two.inquire(t)
	wantCode(t, body, "REQUEST_TRAFFIC_EXCEED_LIMIT")
}
