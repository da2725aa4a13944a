package httpapi

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

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
			refuse := func(reason string, err error) error {
				f.reason = reason
				failures.WithLabelValues(f.op.ID, reason).Inc()
				return err
			}
			cl, ok := src.Current().Lookup(f.clientID)
			switch {
			case !ok:
				return refuse("unknown_client", errAccessDenied)
			case cl.Disabled:
				return refuse("disabled_client", errAccessDenied)
			}
			if err := signature.VerifyRequest(c.Request(), cl.ID, f.body, cl.Key, window, now()); err != nil {
				return refuse(signatureFailure(err), fmt.Errorf("%w: %v", errInvalidSignature, err))
			}
			f.verified = true // its answers are signed from here on, refusals included
			if !cl.Allowed(f.op.ID) {
				return refuse("not_allowed", errAccessDenied)
			}
			return next(c)
		}
	}
}

// signatureFailure names why a signature did not verify, for the log line
// and orderhub_signature_failures_total (the caller only hears
// INVALID_SIGNATURE).
func signatureFailure(err error) string {
	switch {
	case errors.Is(err, signature.ErrRequestTime):
		return "request_time"
	case errors.Is(err, signature.ErrUnknownKey):
		return "unknown_key_version"
	case errors.Is(err, signature.ErrMalformed), errors.Is(err, signature.ErrAlgorithm):
		return "malformed"
	}
	return "signature"
}

// sealer signs partner answers with orderhub's key, as far as the rule of
// which answers are signed allows (seal).
type sealer struct {
	signature.Sealer
	clients  *clients.Source
	refusals *refusalBudget
	made     *prometheus.CounterVec // signatures, by how: signed, reused
	unsigned *prometheus.CounterVec // refusals left unsigned, by why: stranger, budget
}

// seal signs a as the answer to the request f describes. A caller that
// proved itself (its signature verified) always gets a signed answer. A
// refusal to a registered, enabled client that did not (a bad signature, an
// unknown path, a body too large: ids are not secret) is signed while that
// client's and the global budget of signed refusals last, so that no flood
// buys more than a few RSA signatures a second; identical content within a
// second reuses its signature and costs nothing. Anyone else gets an
// unsigned refusal without its Client-Id echoed: signing for strangers
// would hand them orderhub's CPU.
func (s sealer) seal(f *facts, a *answer) error {
	var allow func() bool
	switch {
	case f.verified:
	case s.registered(f.clientID):
		allow = func() bool { return s.refusals.allow(f.clientID) }
	default:
		f.stranger = true
		a.Header.Del("Client-Id")
		s.unsigned.WithLabelValues("stranger").Inc()
		return nil
	}
	how, err := s.Seal(a.Header, f.method, f.path, f.clientID, a.Body, allow)
	switch {
	case err != nil:
		return err
	case how == signature.Withheld:
		s.unsigned.WithLabelValues("budget").Inc()
	case how == signature.Reused:
		s.made.WithLabelValues("reused").Inc()
	default:
		s.made.WithLabelValues("signed").Inc()
	}
	return nil
}

// registered reports whether clientID is a registered, enabled client.
func (s sealer) registered(clientID string) bool {
	cl, ok := s.clients.Current().Lookup(clientID)
	return ok && !cl.Disabled
}

// refusalBudget is the budget of signed refusals to callers that did not
// prove themselves: a token bucket per registered Client-Id and one for all
// of them together, so that a flood rotating through the registry's ids is
// bounded as well. Registered ids only: the map is bounded by the registry.
type refusalBudget struct {
	now       func() time.Time
	perClient int
	mu        sync.Mutex
	global    *rate.Limiter
	each      map[string]*rate.Limiter
}

// newRefusalBudget allows perClient signed refusals a second to each
// client and four times as many to all, each with a burst of twice that.
func newRefusalBudget(perClient int, now func() time.Time) *refusalBudget {
	g := 4 * perClient
	return &refusalBudget{now: now, perClient: perClient, global: rate.NewLimiter(rate.Limit(g), 2*g), each: map[string]*rate.Limiter{}}
}

// allow spends one signed refusal of clientID's budget and the global one.
func (b *refusalBudget) allow(clientID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.each[clientID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(b.perClient), 2*b.perClient)
		b.each[clientID] = l
	}
	now := b.now()
	// Reserve both, or spend neither: a client over its own budget must not
	// use up everyone's.
	r := l.ReserveN(now, 1)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return false
	}
	if !b.global.AllowN(now, 1) {
		r.CancelAt(now)
		return false
	}
	return true
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
