package main

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/store"
)

// openStore opens Redis when ORDERHUB_REDIS_URL is set, else the in-memory
// store (state is lost on exit: for trying orderhub out, not production).
func openStore(cfg config) (store.Store, string, error) {
	if cfg.RedisURL == "" {
		return store.NewMemory(nil), "memory (set ORDERHUB_REDIS_URL for Redis)", nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, "", &configError{fmt.Sprintf("ORDERHUB_REDIS_URL: %v", err)}
	}
	tuneRedis(opt, cfg.RequestTimeout)
	return store.NewRedis(redis.NewClient(opt)), "redis " + opt.Addr, nil
}

// tuneRedis makes every Redis call end within the request's deadline: a
// hung or unreachable Redis must turn into a U answer in time, never a
// request that waits past what the caller is told.
func tuneRedis(opt *redis.Options, requestTimeout time.Duration) {
	// Honour the request context's deadline on reads and writes; without
	// this go-redis applies only its own timeouts and ignores the context.
	opt.ContextTimeoutEnabled = true
	// Dialling is not bounded by the context in every path: keep it short.
	if opt.DialTimeout <= 0 || opt.DialTimeout > requestTimeout/2 {
		opt.DialTimeout = requestTimeout / 2
	}
}
