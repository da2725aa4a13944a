package httpapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/openapi"
)

// verifyRequests lets a partner API request through only when it comes
// from a registered, enabled client, carries a valid signature of its exact
// bytes made within the time window, and calls an operation the client may
// call. Identity first, then the signature, then the permission: an
// unsigned caller learns nothing about what a client may do.
func verifyRequests(src *clients.Source, window time.Duration, now func() time.Time, failures *prometheus.CounterVec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			f := factsOf(c)
			if f.op.Kind != openapi.Partner {
				return next(c) // not a partner API: the validator answers
			}
			cl, ok := src.Current().Lookup(f.clientID)
			if !ok || cl.Disabled {
				failures.WithLabelValues(f.op.ID, "unknown_client").Inc()
				return errAccessDenied
			}
			if err := signature.VerifyRequest(c.Request(), cl.ID, f.body, cl.Key, window, now()); err != nil {
				reason := "signature"
				if errors.Is(err, signature.ErrRequestTime) {
					reason = "request_time"
				}
				failures.WithLabelValues(f.op.ID, reason).Inc()
				return fmt.Errorf("%w: %v", errInvalidSignature, err)
			}
			if !cl.Allowed(f.op.ID) {
				failures.WithLabelValues(f.op.ID, "not_allowed").Inc()
				return errAccessDenied
			}
			return next(c)
		}
	}
}

// sealer signs partner answers with orderhub's key.
type sealer struct{ signature.Sealer }

// seal signs a as the answer to the request f describes, echoing its
// Client-Id when that can be a client's.
func (s sealer) seal(f *facts, a *answer) error {
	return s.Seal(a.Header, f.method, f.path, f.clientID, a.Body)
}

// answer renders v, whose result is r, as a signed answer to the request f
// describes, and notes the result for the log line and metrics.
func (s sealer) answer(f *facts, status int, r models.Result, v any) (*answer, error) {
	a, err := render(status, v)
	if err != nil {
		return nil, err
	}
	f.noteResult(r)
	return a, s.seal(f, a)
}

// signed reports whether answers on endpoints of kind k are signed: the
// partner APIs' are, and so is any answer to a path outside the contract
// (it may be a partner's mistyped call); the operator API and the service
// endpoints are not partner messages.
func signed(k openapi.Kind) bool {
	return k != openapi.Operator && k != openapi.Service
}

// echoable reports whether a request's Client-Id may be echoed: at most
// clients.MaxClientIDLen visible ASCII characters, as the contract says.
func echoable(clientID string) bool {
	return len(clientID) <= clients.MaxClientIDLen && usableRequestID(clientID)
}
