package httpapi

import (
	"context"
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/impl/ratelimit"
)

// rateLimit spends one call of the caller's quota, and of the global one, on
// every partner API request but the idempotent notifications, which spend
// theirs in the idempotency middleware (see limitNew). A refused request
// goes no further, so it has no effect. It runs after verifyRequests: only
// an authenticated Client-Id spends its quota, and no stranger can spend
// another's. lim nil turns it off.
func rateLimit(ops map[string]string, lim ratelimit.Limiter) echo.MiddlewareFunc {
	idempotent := map[string]bool{}
	for _, op := range idempotentOps() {
		idempotent[op.id] = true
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if lim == nil {
			return next
		}
		return func(c echo.Context) error {
			op, ok := partnerCall(c, ops)
			if !ok || idempotent[op] {
				return next(c) // operator API, service endpoints, unknown paths, notifications
			}
			req := c.Request()
			if err := limit(req.Context(), lim, req.Header.Get("Client-Id")); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// limit spends one call of clientID's quota: nil when allowed,
// ratelimit.ErrLimited (F) when refused, another error (U) when the limiter
// cannot tell.
func limit(ctx context.Context, lim ratelimit.Limiter, clientID string) error {
	if lim == nil {
		return nil
	}
	d, err := lim.Allow(ctx, clientID)
	if err != nil {
		return fmt.Errorf("rate limit: %w", err) // U: the caller retries
	}
	return d.Err()
}
