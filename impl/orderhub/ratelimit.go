package orderhub

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/ratelimit"
)

// openLimiter builds the rate limiter over the store's Redis client, so the
// limits hold across every instance, or in the process when there is no
// Redis (rdb nil). It returns nil when no limit is configured, and a line
// saying what is in force.
func openLimiter(limits ratelimit.Limits, rdb redis.UniversalClient) (ratelimit.Limiter, string) {
	if limits.Off() {
		return nil, "rate limits: off"
	}
	desc := fmt.Sprintf("rate limits: per client %s, global %s", limits.PerClient, limits.Global)
	if rdb == nil {
		return ratelimit.NewMemory(limits, nil), desc + " (this process only)"
	}
	return ratelimit.NewRedis(rdb, limits), desc + " (shared through Redis)"
}
