package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// rawBodyKey carries the raw request body in the request's context.
type rawBodyKey struct{}

// captureBody reads the whole body once, up to limit bytes, and keeps the raw
// bytes: the idempotency fingerprint (and signatures) need them exactly as
// sent. A larger body is refused with 413.
func captureBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			raw, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
			if err != nil {
				return err
			}
			if int64(len(raw)) > limit {
				return errBodyTooLarge
			}
			// kin-openapi and the binder read only the first JSON value:
			// refuse trailing data and invalid UTF-8 here, before anything
			// acts on the body or fingerprints it.
			if len(raw) > 0 && (!json.Valid(raw) || !utf8.Valid(raw)) {
				return &paramError{"body: is not valid JSON"}
			}
			req.Body = io.NopCloser(bytes.NewReader(raw))
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), rawBodyKey{}, raw)))
			return next(c)
		}
	}
}

// rawBody is the request body as captured.
func rawBody(ctx context.Context) []byte {
	b, _ := ctx.Value(rawBodyKey{}).([]byte)
	return b
}

// responseHeaders gives every partner API response the headers the contract
// declares: Client-Id echoed and Response-Time. A response that already has
// them (an idempotent replay) keeps its own.
func responseHeaders(now func() time.Time) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if isOps(c) {
				return next(c)
			}
			res := c.Response()
			res.Before(func() {
				h := res.Header()
				if h.Get("Response-Time") == "" {
					h.Set("Response-Time", now().Format(time.RFC3339))
				}
				if h.Get("Client-Id") == "" {
					if id := c.Request().Header.Get("Client-Id"); id != "" {
						h.Set("Client-Id", id)
					}
				}
			})
			return next(c)
		}
	}
}
