package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"unicode/utf16"
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
// data would otherwise be acted on and fingerprinted as if absent. It also
// refuses a body that readers may read differently (see ambiguity), and a
// path whose percent-escapes decode to invalid UTF-8 (an order id no JSON
// body could ever name). It runs after the caller is identified, so
// strangers learn nothing of their body, and after the validator, so
// unknown paths stay INVALID_API.
func wellFormed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !utf8.ValidString(c.Request().URL.Path) {
			return &paramError{"path: is not valid UTF-8"}
		}
		raw := rawBody(c.Request().Context())
		if len(raw) > 0 && (!json.Valid(raw) || !utf8.Valid(raw)) {
			return &paramError{"body: is not valid JSON"}
		}
		if msg := ambiguity(raw); msg != "" {
			return &paramError{msg}
		}
		return next(c)
	}
}

// ambiguity says what makes a valid JSON body mean different things to
// different readers, or "" if nothing does (I-JSON, RFC 7493, forbids
// both): a member name twice in one object, which the validator and the
// binder read last-wins while a proxy or a log may read first-wins; or an
// unpaired surrogate escape, which decodes to U+FFFD, so that different
// requestIds would become one. raw must be valid JSON.
func ambiguity(raw []byte) string {
	if unpairedSurrogate(raw) {
		return "body: a string holds an unpaired surrogate escape"
	}
	type frame struct {
		keys    map[string]bool // nil in an array
		path    []string        // the member names leading here
		wantKey bool
		key     string // the member whose value comes next
	}
	var stack []*frame
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // 1e400 is valid JSON but no float64: read on past it
	for {
		tok, err := d.Token()
		if err != nil {
			return "" // io.EOF: raw is valid JSON, so nothing else
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.wantKey {
			if top.keys[s] {
				return fieldName(append(top.path, s)) + ": appears more than once"
			}
			top.keys[s], top.key, top.wantKey = true, s, false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			f := &frame{}
			if top != nil {
				f.path = top.path
				if top.keys != nil {
					f.path = append(slices.Clip(top.path), top.key)
				}
			}
			if tok == json.Delim('{') {
				f.keys, f.wantKey = map[string]bool{}, true
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				top = stack[len(stack)-1]
			} else {
				top = nil
			}
		}
		// A value has ended: in an object, a member name comes next.
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
	}
}

// unpairedSurrogate reports whether a string of the valid JSON raw holds a
// \uD800-\uDFFF escape that is not a high-low pair.
func unpairedSurrogate(raw []byte) bool {
	hex4 := func(i int) rune {
		if i+4 > len(raw) {
			return -1
		}
		n, err := strconv.ParseUint(string(raw[i:i+4]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(n)
	}
	// In valid JSON a backslash appears only in strings, as an escape.
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] != 'u' {
			i++ // a one-character escape, \\ included
			continue
		}
		switch r := hex4(i + 2); {
		case utf16.IsSurrogate(r) && r < 0xDC00:
			j := i + 6
			if j+1 < len(raw) && raw[j] == '\\' && raw[j+1] == 'u' {
				if lo := hex4(j + 2); utf16.IsSurrogate(lo) && lo >= 0xDC00 {
					i = j + 5
					continue
				}
			}
			return true
		case utf16.IsSurrogate(r):
			return true
		}
		i += 5
	}
	return false
}
