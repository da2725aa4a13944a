package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo-contrib/echoprometheus"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/faults"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
)

// facts is what the layers learn about one request, each filling in what
// it learns: the log line and the metrics report them, and the handlers read
// the verified caller and the body from them. They travel in the request's
// context, the one thing both echo's middleware and the typed handlers see.
type facts struct {
	requestID string            // X-Request-Id, the caller's or ours
	op        openapi.Operation // the operation called; ID "" when none matched
	kind      openapi.Kind      // who calls the endpoint, by path
	method    string            // as received, for signing the answer
	path      string            // escaped, as received, for signing the answer
	body      []byte            // the raw body, exactly as sent
	clientID  string            // Client-Id when it can be a client's; verified before a partner handler runs
	verified  bool              // the caller's signature verified: its answers are signed
	stranger  bool              // refused unsigned as no registered client: logged by sample
	partnerID string            // the body's requestId (idempotency key), if any
	status    string            // result.resultStatus of the answer
	code      string            // result.resultCode of the answer
	fault     string            // the fault rule's action applied to the call, if any

	// extendDeadline gives the rest of the request a deadline d later than
	// the request timeout from now would be, on the request's own context
	// (set by the deadline middleware): a delay fault waits on it.
	extendDeadline func(d time.Duration) (context.Context, context.CancelFunc)
}

type factsKey struct{}

// factsFrom returns the request's facts; outside a request, a throwaway.
func factsFrom(ctx context.Context) *facts {
	if f, ok := ctx.Value(factsKey{}).(*facts); ok {
		return f
	}
	return &facts{}
}

func factsOf(c echo.Context) *facts { return factsFrom(c.Request().Context()) }

// operationID names the operation for logs and metrics: bounded, unlike
// the path.
func (f *facts) operationID() string {
	if f.op.ID == "" {
		return "unknown"
	}
	return f.op.ID
}

// noteResult records the result an answer carries.
func (f *facts) noteResult(r models.Result) {
	f.status, f.code = string(r.ResultStatus), string(r.ResultCode)
}

// maxRequestID bounds an accepted X-Request-Id: it goes into every log line.
const maxRequestID = 128

// requestIDs gives every request its facts: an id (the caller's
// X-Request-Id when it is 1 to 128 visible ASCII characters, nothing that
// could forge log lines or bloat them, otherwise a new UUID, echoed in the
// response) and what the contract says of the route echo matched.
func requestIDs(cat *openapi.Catalog) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			id := req.Header.Get(echo.HeaderXRequestID)
			if !usableRequestID(id) {
				id = uuid.NewString()
			}
			route := contractPath(c.Path())
			f := &facts{requestID: id, method: req.Method, path: req.URL.EscapedPath()}
			if cid := req.Header.Get("Client-Id"); echoable(cid) {
				f.clientID = cid
			}
			f.op, _ = cat.Operation(req.Method, route)
			if f.kind = cat.PathKind(route); f.kind == openapi.Unknown {
				f.kind = cat.PathKind(req.URL.Path) // no route: by prefix
			}
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), factsKey{}, f)))
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			return next(c)
		}
	}
}

// contractPath turns echo's route syntax (/ops/orders/:requestOrderId) back
// into the contract's (/ops/orders/{requestOrderId}).
func contractPath(route string) string {
	if !strings.Contains(route, ":") {
		return route
	}
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// usableRequestID: 1 to 128 visible ASCII characters.
func usableRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestLog writes one line per request: the request id, operation,
// caller, requestId, result and latency; never bodies, signatures or keys.
// It runs the error handler itself, so the line (and the metrics outside
// it) see the answer that was sent.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	var strangers sampler
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURIPath: true, LogStatus: true, LogLatency: true, LogError: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			f := factsOf(c)
			skipped := 0
			if f.stranger {
				var ok bool
				if ok, skipped = strangers.take(v.StartTime); !ok {
					return nil
				}
			}
			if f.status == "" && f.kind == openapi.Operator && v.Status < http.StatusMultipleChoices {
				// The operator API's successes carry no result object.
				f.status, f.code = "S", "SUCCESS"
			}
			attrs := []slog.Attr{
				slog.String("xRequestId", f.requestID),
				slog.String("operation", f.operationID()),
				slog.String("method", clip(v.Method, 16)), slog.String("path", clip(v.URIPath, 256)),
				slog.String("clientId", clip(c.Request().Header.Get("Client-Id"), 128)),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
			}
			if f.partnerID != "" {
				attrs = append(attrs, slog.String("requestId", f.partnerID))
			}
			if f.status != "" {
				attrs = append(attrs, slog.String("resultStatus", f.status), slog.String("resultCode", f.code))
			}
			if v.Error != nil {
				attrs = append(attrs, slog.String("err", errorText(v.Error)))
			}
			if f.fault != "" {
				attrs = append(attrs, slog.String("fault", f.fault))
			}
			if f.stranger {
				attrs = append(attrs, slog.Int("strangersNotLogged", skipped))
			}
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request", attrs...)
			return nil
		},
	})
}

// sampler lets one log line a second through, and counts the others: the
// refusals to strangers are sampled, so that a flood does not flood the log
// too (orderhub_unsigned_refusals_total counts every one).
type sampler struct {
	mu      sync.Mutex
	next    time.Time
	skipped int
}

// take reports whether a line at now is logged and, if so, how many were
// left out since the last one.
func (s *sampler) take(now time.Time) (ok bool, skipped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.next) {
		s.skipped++
		return false, 0
	}
	skipped, s.skipped, s.next = s.skipped, 0, now.Add(time.Second)
	return true, skipped
}

// metrics are orderhub's own Prometheus series; the HTTP series come from
// echoprometheus.
type metrics struct {
	reg               *prometheus.Registry
	idempotency       *prometheus.CounterVec
	storeErrors       *prometheus.CounterVec
	signatureFailures *prometheus.CounterVec
	signatures        *prometheus.CounterVec
	unsignedRefusals  *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		reg: reg,
		idempotency: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderhub_idempotency_total",
			Help: "Idempotent notifications by outcome: new (processed), replay (stored answer sent again), mismatch (requestId reused with another body), in_progress (a duplicate while the first runs), version_conflict (re-run after a concurrent change).",
		}, []string{"operation", "outcome"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderhub_store_errors_total",
			Help: "Failed calls to the store (Redis): unreachable, timed out, or refused.",
		}, []string{"call"}),
		signatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderhub_signature_failures_total",
			Help: "Partner requests refused by message security: unknown or disabled client, bad signature, Request-Time outside the window, or an operation the client may not call.",
		}, []string{"operation", "reason"}),
	}
	m.signatures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderhub_signatures_total",
		Help: "Answers signed with orderhub's key, by how: signed (an RSA signature made) or reused (the signature of identical content in the same Response-Time second).",
	}, []string{"how"})
	m.unsignedRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderhub_unsigned_refusals_total",
		Help: "Refusals sent unsigned, by why: stranger (the Client-Id is no registered, enabled client) or budget (a registered Client-Id that did not prove itself, past its budget of signed refusals).",
	}, []string{"why"})
	for _, how := range []string{"signed", "reused"} {
		m.signatures.WithLabelValues(how)
	}
	for _, why := range []string{"stranger", "budget"} {
		m.unsignedRefusals.WithLabelValues(why)
	}
	for _, c := range []prometheus.Collector{
		m.idempotency, m.storeErrors, m.signatureFailures, m.signatures, m.unsignedRefusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// faultsInjected registers the count of calls fault rules acted on, by
// operation and action, every series at zero from the start.
func (m *metrics) faultsInjected(ops []string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderhub_faults_injected_total",
		Help: "Partner calls a fault rule acted on (ORDERHUB_FAULTS=1), by operation and action: answer, delay, dropBeforeProcessing, dropAfterCommit.",
	}, []string{"operation", "action"})
	for _, op := range ops {
		for _, a := range faults.Actions() {
			c.WithLabelValues(op, string(a))
		}
	}
	return c, m.reg.Register(c)
}

// httpMetrics counts and times requests by operation and result. The host
// and path labels are fixed or bounded: callers choose both freely.
func (m *metrics) httpMetrics() (echo.MiddlewareFunc, error) {
	return echoprometheus.MiddlewareConfig{
		Namespace:                 "orderhub",
		Subsystem:                 "http",
		Registerer:                m.reg,
		DoNotUseRequestPathFor404: true,
		// The status sent: requestLog has answered any error by now, and
		// a partner error is answered 200 with its envelope.
		StatusCodeResolver: func(c echo.Context, _ error) int { return c.Response().Status },
		LabelFuncs: map[string]echoprometheus.LabelValueFunc{
			"host":          func(echo.Context, error) string { return "" },
			"method":        func(c echo.Context, _ error) string { return knownMethod(c.Request().Method) },
			"operation":     func(c echo.Context, _ error) string { return factsOf(c).operationID() },
			"result_status": func(c echo.Context, _ error) string { return factsOf(c).status },
			"result_code":   func(c echo.Context, _ error) string { return factsOf(c).code },
		},
	}.ToMiddleware()
}

// knownMethod bounds the method label: Go's server accepts any token as a
// method, and each would be a new series.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// instrumented counts the store's failures; answers such as "not found"
// or "changed meanwhile" are not failures.
type instrumented struct {
	store.Store
	errors *prometheus.CounterVec
}

func (s instrumented) count(call string, err error) error {
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		s.errors.WithLabelValues(call).Inc()
	}
	return err
}

func (s instrumented) GetOrder(ctx context.Context, id string) (o domain.Order, err error) {
	o, err = s.Store.GetOrder(ctx, id)
	return o, s.count("get_order", err)
}

func (s instrumented) PutOrder(ctx context.Context, o domain.Order) (domain.Order, error) {
	o, err := s.Store.PutOrder(ctx, o)
	return o, s.count("put_order", err)
}

func (s instrumented) ListAudits(ctx context.Context, tradeID string) (a []domain.Audit, err error) {
	a, err = s.Store.ListAudits(ctx, tradeID)
	return a, s.count("list_audits", err)
}

func (s instrumented) Begin(ctx context.Context, k store.Key, fp string, lease time.Duration) (store.Begun, error) {
	b, err := s.Store.Begin(ctx, k, fp, lease)
	return b, s.count("begin", err)
}

func (s instrumented) Commit(ctx context.Context, k store.Key, token string, response []byte, retention time.Duration, effect store.Effect) error {
	return s.count("commit", s.Store.Commit(ctx, k, token, response, retention, effect))
}

func (s instrumented) Release(ctx context.Context, k store.Key, token string) error {
	return s.count("release", s.Store.Release(ctx, k, token))
}

func (s instrumented) Ping(ctx context.Context) error {
	return s.count("ping", s.Store.Ping(ctx))
}
