package httpapi

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
)

// PartnerOperations lists the operationIds a client may be allowed to call.
func PartnerOperations() ([]string, error) {
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, id := range classify(spec).partner {
		ids = append(ids, id)
	}
	return ids, nil
}

// verifyRequests lets a partner API request through only when it comes
// from a registered, enabled client, carries a valid signature of its exact
// bytes made within the time window, and calls an operation the client may
// call. Identity first, then the signature, then the permission: an
// unsigned caller learns nothing about what a client may do.
func verifyRequests(ops map[string]string, src *clients.Source, window time.Duration, now func() time.Time, failures *prometheus.CounterVec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			op, ok := partnerCall(c, ops)
			if !ok {
				return next(c) // not a partner API: the validator answers
			}
			cl, ok := src.Current().Lookup(req.Header.Get("Client-Id"))
			if !ok || cl.Disabled {
				failures.WithLabelValues(op, "unknown_client").Inc()
				return errAccessDenied
			}
			if reason, err := verifyRequest(cl, req, rawBody(req.Context()), window, now()); err != nil {
				failures.WithLabelValues(op, reason).Inc()
				return fmt.Errorf("%w: %v", errInvalidSignature, err)
			}
			if !cl.Allowed(op) {
				failures.WithLabelValues(op, "not_allowed").Inc()
				return errAccessDenied
			}
			return next(c)
		}
	}
}

// partnerCall names the partner operation c calls: a POST to one of ops's
// paths (by operationId). Other methods there are answered 405 further on.
func partnerCall(c echo.Context, ops map[string]string) (string, bool) {
	op, ok := ops[c.Path()]
	return op, ok && c.Request().Method == http.MethodPost
}

// verifyRequest checks the signature and Request-Time; on failure it also
// says which of the two failed, for the metrics.
func verifyRequest(cl *clients.Client, req *http.Request, body []byte, window time.Duration, now time.Time) (reason string, err error) {
	h, err := signature.ParseHeader(req.Header.Get("Signature"))
	if err != nil {
		return "signature", err
	}
	key, ok := cl.Key(h.KeyVersion)
	if !ok {
		return "signature", fmt.Errorf("no active key version %d", h.KeyVersion)
	}
	sent := req.Header.Get("Request-Time")
	at, err := parseRequestTime(sent)
	if err != nil {
		return "request_time", err
	}
	if d := now.Sub(at); d > window || d < -window {
		return "request_time", fmt.Errorf("Request-Time is %s away from the server clock", d.Round(time.Second))
	}
	// Signed exactly as received: the header value, not the parsed time.
	return "signature", signature.Verify(key, signature.Content(req.Method, req.URL.EscapedPath(), cl.ID, sent, body), h.Signature)
}

// parseRequestTime reads ISO 8601 with offset, or epoch milliseconds as
// Ant's Go SDK sends.
func parseRequestTime(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errors.New("Request-Time is neither ISO 8601 with offset nor epoch milliseconds")
	}
	return t, nil
}

// sealFunc gives a response its Client-Id, Response-Time and Signature.
type sealFunc func(req *http.Request, h http.Header, body []byte) error

// sealer signs responses with orderhub's key: over the request's method and
// path, the echoed Client-Id, the Response-Time and the exact body.
func sealer(key *rsa.PrivateKey, version int, now func() time.Time) sealFunc {
	return func(req *http.Request, h http.Header, body []byte) error {
		clientID := req.Header.Get("Client-Id")
		if !echoable(clientID) {
			clientID = "" // never reflect what cannot be a client's id
		}
		ts := now().Format(time.RFC3339)
		sig, err := signature.Sign(key, signature.Content(req.Method, req.URL.EscapedPath(), clientID, ts, body))
		if err != nil {
			return fmt.Errorf("signing the response: %w", err)
		}
		if clientID != "" {
			h.Set("Client-Id", clientID)
		} else {
			h.Del("Client-Id")
		}
		h.Set("Response-Time", ts)
		h.Set("Signature", signature.Header{Algorithm: signature.Algorithm, KeyVersion: version, Signature: sig}.String())
		return nil
	}
}

// signResponses holds back every partner API response, errors included,
// and signs it before it leaves. A response that is already signed (an
// idempotent answer, sealed before it was stored) goes out as it is: replays
// cost no RSA work and carry the first answer's signature.
func signResponses(seal sealFunc, r routes) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if isOps(c) || r.service[c.Path()] {
				return next(c)
			}
			rec := capture(c, func() {
				if err := next(c); err != nil {
					c.Error(err)
				}
			})
			if rec.Header.Get("Signature") == "" {
				if err := seal(c.Request(), rec.Header, rec.Body); err != nil {
					return err
				}
			}
			return flush(c, rec)
		}
	}
}

// echoable reports whether a request's Client-Id is echoed: at most
// clients.MaxClientIDLen visible ASCII characters, as the contract says.
func echoable(clientID string) bool {
	return len(clientID) <= clients.MaxClientIDLen && usableRequestID(clientID)
}
