package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/impl/ijson"
)

// captureBody reads the whole body once, up to limit bytes, and keeps the raw
// bytes in the request's facts: the signature and the idempotency
// fingerprint need them exactly as sent. A larger body is refused with 413,
// one that does not arrive before the server's read deadline with 408.
func captureBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			raw, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return errBodyTooSlow // the server's read deadline: a slow sender
			}
			if err != nil {
				return err
			}
			if int64(len(raw)) > limit {
				return errBodyTooLarge
			}
			req.Body = io.NopCloser(bytes.NewReader(raw))
			factsOf(c).body = raw
			return next(c)
		}
	}
}

// wellFormed refuses a body that is not exactly one JSON value in valid
// UTF-8: kin-openapi and the binder read only the first value, so trailing
// data would otherwise be acted on and fingerprinted as if absent. It also
// refuses a body that readers may read differently (ijson.Ambiguity), and a
// path whose percent-escapes decode to invalid UTF-8 (an order id no JSON
// body could ever name). It runs after the caller is identified, so
// strangers learn nothing of their body, and after the validator, so
// unknown paths stay INVALID_API.
func wellFormed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !utf8.ValidString(c.Request().URL.Path) {
			return &paramError{"path: is not valid UTF-8"}
		}
		raw := factsOf(c).body
		if len(raw) > 0 && (!json.Valid(raw) || !utf8.Valid(raw)) {
			return &paramError{"body: is not valid JSON"}
		}
		if p := ijson.Ambiguity(raw); p != nil {
			return &paramError{problemText(p)}
		}
		return next(c)
	}
}

// problemText names the field at fault, or the body when the problem is
// the whole text's.
func problemText(p *ijson.Problem) string {
	if len(p.Path) == 0 {
		return "body: " + p.Reason
	}
	return fieldName(p.Path) + ": " + p.Reason
}
