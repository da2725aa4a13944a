package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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

// wellFormed refuses a body that is not exactly one JSON value in valid
// UTF-8: kin-openapi and the binder read only the first value, so trailing
// data would otherwise be acted on and fingerprinted as if absent. It runs
// after the caller is identified, so strangers learn nothing of their body,
// and after the validator, so unknown paths stay INVALID_API.
func wellFormed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw := rawBody(c.Request().Context())
		if len(raw) > 0 && (!json.Valid(raw) || !utf8.Valid(raw)) {
			return &paramError{"body: is not valid JSON"}
		}
		return next(c)
	}
}
