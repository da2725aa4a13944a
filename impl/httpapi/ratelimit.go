package httpapi

import (
	"context"
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/openapi"
)

// rateLimit spends one call of the caller's quota, and of the global one, on
// every partner API request but the idempotent notifications, which spend
// theirs in runIdempotent, once a request is known to be new work. A
// refused request goes no further, so it has no effect. It runs after
// verifyRequests: only an authenticated Client-Id spends its quota, and no
// stranger can spend another's. lim nil turns it off.
func rateLimit(lim ratelimit.Limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if lim == nil {
			return next
		}
		return func(c echo.Context) error {
			f := factsOf(c)
			if f.op.Kind != openapi.Partner || f.op.Idempotent {
				return next(c) // operator API, service endpoints, unknown paths, notifications
			}
			if err := limit(c.Request().Context(), lim, f.clientID); err != nil {
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
