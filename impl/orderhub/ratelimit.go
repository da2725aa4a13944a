package main

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/ratelimit"
)

// openLimiter builds the rate limiter over the store's Redis client, so the
// limits hold across every instance, or in the process when there is no
// Redis (rdb nil). It returns nil when no limit is configured, and a line
// saying what is in force.
func openLimiter(cfg config, rdb redis.UniversalClient) (ratelimit.Limiter, string) {
	limits := ratelimit.Limits{PerClient: cfg.RateLimitPerClient, Global: cfg.RateLimitGlobal}
	if limits.Off() {
		return nil, "rate limits: off (set ORDERHUB_RATE_LIMIT_PER_CLIENT or ORDERHUB_RATE_LIMIT_GLOBAL)"
	}
	desc := fmt.Sprintf("rate limits: per client %s, global %s", limits.PerClient, limits.Global)
	if rdb == nil {
		return ratelimit.NewMemory(limits, nil), desc + " (this process only)"
	}
	return ratelimit.NewRedis(rdb, limits), desc + " (shared through Redis)"
}
