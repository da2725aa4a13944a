package httpapi

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/impl/ratelimit"
)

// rateLimit spends one call of the caller's quota, and of the global one, on
// every partner API request; a refused request goes no further, so it has
// no effect and claims no requestId. It runs after verifyRequests: only an
// authenticated Client-Id spends its quota, and no stranger can spend
// another's. A repeated notification counts too: it is a call. lim nil
// turns it off.
func rateLimit(ops map[string]string, lim ratelimit.Limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if lim == nil {
			return next
		}
		return func(c echo.Context) error {
			req := c.Request()
			if _, ok := ops[c.Path()]; !ok || req.Method != http.MethodPost {
				return next(c) // operator API, service endpoints, unknown paths
			}
			d, err := lim.Allow(req.Context(), req.Header.Get("Client-Id"))
			if err != nil {
				return fmt.Errorf("rate limit: %w", err) // U: the caller retries
			}
			if err := d.Err(); err != nil {
				return err
			}
			return next(c)
		}
	}
}
