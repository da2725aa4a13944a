package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key layout. The braces are the Redis Cluster hash tag: every limit key
// shares one slot, so one script checks the caller's limit and the global
// one together. That costs no spread, since every call touches the global
// key anyway, and it buys atomicity: a refused call spends no quota at all.
// The Client-Id comes after the hash tag and ends the key, so it needs no
// escaping.
//
//	orderhub:rate:{rate}:client:<Client-Id>   string: theoretical arrival time, µs since the epoch
//	orderhub:rate:{rate}:global               the same, for all callers together
//
// Each key expires when its limit is full again, so idle callers cost nothing.
const (
	keyPrefix = "orderhub:rate:{rate}:"
	globalKey = keyPrefix + "global"
)

func clientKey(clientID string) string { return keyPrefix + "client:" + clientID }

// Redis is the Limiter shared by every orderhub instance on the same Redis
// (a single node, Sentinel or Cluster). Time is Redis's own (TIME), so the
// instances' clocks do not matter.
type Redis struct {
	c      redis.UniversalClient
	limits Limits
	allow  *redis.Script
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Limiter over c enforcing limits.
func NewRedis(c redis.UniversalClient, limits Limits) *Redis {
	return &Redis{c: c, limits: limits, allow: redis.NewScript(allowLua)}
}

// allowLua is GCRA (as in rwz/redis-gcra and go-redis/redis_rate) over
// several limits at once: the call is allowed only if every limit allows
// it, and then counted against every one; otherwise nothing is written.
// Integer microseconds throughout: exact in Lua's doubles until 2255.
// Writing after TIME needs effects replication, the default since Redis 5.
//
// KEYS: one per limit. ARGV: per limit, its interval and its window (µs).
// Returns {0, 0} if allowed, else {index of the first refusing limit,
// µs until every limit would allow the call}.
const allowLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  local interval, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', key) or now), now) + interval
  local over = tat - now - window
  if over > 0 then
    if refused == 0 then refused = i end
    wait = math.max(wait, over)
  end
  tats[i] = tat
end
if refused > 0 then return {refused, wait} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%d', tats[i]), 'PX', string.format('%d', math.ceil((tats[i] - now) / 1000)))
end
return {0, 0}
`

// Allow counts one call of clientID if every limit allows it.
func (r *Redis) Allow(ctx context.Context, clientID string) (Decision, error) {
	cs := r.limits.checks(clientID)
	if len(cs) == 0 {
		return Decision{Allowed: true}, nil
	}
	keys := make([]string, len(cs))
	args := make([]any, 0, 2*len(cs))
	for i, c := range cs {
		keys[i] = c.key
		args = append(args, c.limit.interval().Microseconds(), c.limit.window().Microseconds())
	}
	res, err := r.allow.Run(ctx, r.c, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: %w", err)
	}
	if len(res) != 2 || res[0] < 0 || res[0] > int64(len(cs)) {
		return Decision{}, fmt.Errorf("ratelimit: unexpected script answer %v", res)
	}
	if res[0] == 0 {
		return Decision{Allowed: true}, nil
	}
	return Decision{Exceeded: cs[res[0]-1].scope, RetryAfter: time.Duration(res[1]) * time.Microsecond}, nil
}
