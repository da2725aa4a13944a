package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/buildinfo"
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
	idem      string            // the idempotency outcome: new, replay, mismatch, in_progress
	reason    string            // why message security refused the call (signatureFailure reasons)

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
// caller, requestId, idempotency outcome, result, refusal reason and
// latency; never bodies, signatures or keys. It runs the error handler
// itself, so the line (and the metrics outside it) see the answer that was
// sent. Successful probes (health, readiness, metrics scrapes) are logged at
// DEBUG only: a load balancer probing every second would be most of the
// log, and orderhub_http_requests_total counts them anyway.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	var strangers sampler
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURIPath: true, LogStatus: true, LogLatency: true, LogError: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			f := factsOf(c)
			ctx := c.Request().Context()
			level := slog.LevelInfo
			if probe(f, v.Status) {
				level = slog.LevelDebug
			}
			if !log.Enabled(ctx, level) {
				return nil
			}
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
			attrs := make([]slog.Attr, 0, 16)
			attrs = append(attrs,
				slog.String("xRequestId", f.requestID),
				slog.String("operation", f.operationID()),
				slog.String("method", clip(v.Method, 16)), slog.String("path", clip(v.URIPath, 256)),
			)
			if id := c.Request().Header.Get("Client-Id"); id != "" {
				attrs = append(attrs, slog.String("clientId", clip(id, 128)))
			}
			attrs = append(attrs,
				slog.Int("status", v.Status),
				slog.Float64("latencyMs", float64(v.Latency.Microseconds())/1000),
			)
			if f.partnerID != "" {
				attrs = append(attrs, slog.String("requestId", f.partnerID))
			}
			if f.idem != "" {
				attrs = append(attrs, slog.String("idempotency", f.idem))
			}
			if f.status != "" {
				attrs = append(attrs, slog.String("resultStatus", f.status), slog.String("resultCode", f.code))
			}
			if f.reason != "" {
				attrs = append(attrs, slog.String("reason", f.reason))
			}
			if f.fault != "" {
				attrs = append(attrs, slog.String("fault", f.fault))
			}
			if v.Error != nil {
				attrs = append(attrs, slog.String("err", errorText(v.Error)))
			}
			if f.stranger {
				attrs = append(attrs, slog.Int("strangersNotLogged", skipped))
			}
			log.LogAttrs(ctx, level, "request", attrs...)
			return nil
		},
	})
}

// probe reports whether a request is a successful probe: liveness,
// readiness or a metrics scrape answered 2xx. A failing one is news.
func probe(f *facts, status int) bool {
	if f.kind != openapi.Service || status >= http.StatusMultipleChoices {
		return false
	}
	switch f.path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// requestAttrs adds the request's xRequestId and operation to every record
// logged with its context that does not name them itself (unexpected
// errors, panics, the store's debug lines), so that each joins its request
// line.
type requestAttrs struct{ slog.Handler }

// RequestLogHandler wraps h so that records logged with a request's
// context carry its xRequestId and operation. New wraps its Logger with it;
// give the same wrapped logger to anything else that logs with request
// contexts (impl/orderhub's Redis hook does).
func RequestLogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestAttrs); ok {
		return h
	}
	return requestAttrs{h}
}

func (h requestAttrs) Handle(ctx context.Context, r slog.Record) error {
	if f, ok := ctx.Value(factsKey{}).(*facts); ok && !named(r, "xRequestId") {
		r = r.Clone()
		r.AddAttrs(slog.String("xRequestId", f.requestID), slog.String("operation", f.operationID()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return requestAttrs{h.Handler.WithAttrs(as)}
}

func (h requestAttrs) WithGroup(name string) slog.Handler {
	return requestAttrs{h.Handler.WithGroup(name)}
}

// named reports whether r has a top-level attribute key.
func named(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
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

// metrics are orderhub's Prometheus series. Each label is bounded (the
// contract's operations, fixed reasons and outcomes, result codes), and
// every series an alert needs exists from the start, at zero.
type metrics struct {
	reg               *prometheus.Registry
	requests          *prometheus.CounterVec   // operation, method, code, result_status, result_code
	duration          *prometheus.HistogramVec // operation, method, code
	requestSize       *prometheus.HistogramVec // operation
	responseSize      *prometheus.HistogramVec // operation
	idempotency       *prometheus.CounterVec
	storeErrors       *prometheus.CounterVec
	signatureFailures *prometheus.CounterVec
	signatures        *prometheus.CounterVec
	unsignedRefusals  *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, cat *openapi.Catalog) (*metrics, error) {
	// The label values known in advance, so that their series start at zero.
	var (
		idempotencyOutcomes = []string{"new", "replay", "mismatch", "in_progress", "version_conflict"}
		signatureReasons    = []string{"unknown_client", "disabled_client", "malformed", "unknown_key_version", "request_time", "signature", "not_allowed"}
		storeCalls          = []string{"get_order", "put_order", "list_audits", "begin", "commit", "release", "answer", "ping"}
	)
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderhub_http_requests_total",
			Help: "HTTP requests by operation (operationId; unknown for paths outside the contract), method, HTTP status code and the answer's result status and code.",
		}, []string{"operation", "method", "code", "result_status", "result_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderhub_http_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by operation, method and HTTP status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "method", "code"}),
		requestSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderhub_http_request_size_bytes",
			Help:    "Request body sizes by operation.",
			Buckets: prometheus.ExponentialBuckets(64, 4, 7), // 64 B .. 256 KiB
		}, []string{"operation"}),
		responseSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderhub_http_response_size_bytes",
			Help:    "Response body sizes by operation.",
			Buckets: prometheus.ExponentialBuckets(64, 4, 7),
		}, []string{"operation"}),
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
			Help: "Partner requests refused by message security, by reason: unknown_client, disabled_client, malformed (Signature header), unknown_key_version, request_time (outside the window), signature (does not verify), not_allowed (operation not allowed to the client).",
		}, []string{"operation", "reason"}),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderhub_signatures_total",
			Help: "Answers signed with orderhub's key, by how: signed (an RSA signature made) or reused (the signature of identical content in the same Response-Time second).",
		}, []string{"how"}),
		unsignedRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderhub_unsigned_refusals_total",
			Help: "Refusals sent unsigned, by why: stranger (the Client-Id is no registered, enabled client) or budget (a registered Client-Id that did not prove itself, past its budget of signed refusals).",
		}, []string{"why"}),
	}
	for _, op := range cat.Operations() {
		if op.Kind != openapi.Partner {
			continue
		}
		// The series the alerts read: the U rate, p99, signature failures.
		m.requests.WithLabelValues(op.ID, op.Method, "200", "S", "SUCCESS")
		m.requests.WithLabelValues(op.ID, op.Method, "200", "U", "UNKNOWN_EXCEPTION")
		m.duration.WithLabelValues(op.ID, op.Method, "200")
		m.requestSize.WithLabelValues(op.ID)
		m.responseSize.WithLabelValues(op.ID)
		for _, r := range signatureReasons {
			m.signatureFailures.WithLabelValues(op.ID, r)
		}
		if op.Idempotent {
			for _, o := range idempotencyOutcomes {
				m.idempotency.WithLabelValues(op.ID, o)
			}
		}
	}
	for _, c := range storeCalls {
		m.storeErrors.WithLabelValues(c)
	}
	for _, how := range []string{"signed", "reused"} {
		m.signatures.WithLabelValues(how)
	}
	for _, why := range []string{"stranger", "budget"} {
		m.unsignedRefusals.WithLabelValues(why)
	}
	b := buildinfo.Read()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "orderhub_build_info",
		Help: "The running build: version, revision (commit), Go version and crypto build (go, boringcrypto or fips140); always 1.",
	}, []string{"version", "revision", "goversion", "crypto"})
	build.WithLabelValues(b.Version, b.Revision, b.GoVersion, b.Crypto).Set(1)
	for _, c := range []prometheus.Collector{
		m.requests, m.duration, m.requestSize, m.responseSize,
		m.idempotency, m.storeErrors, m.signatureFailures, m.signatures, m.unsignedRefusals, build,
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

// observe counts and times every request by operation and result. It runs
// outside requestLog, which has answered any error by the time it returns,
// so the status and result are those sent. The method and path labels are
// bounded: callers choose both freely.
func (m *metrics) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		f, res := factsOf(c), c.Response()
		op, method, code := f.operationID(), knownMethod(c.Request().Method), strconv.Itoa(res.Status)
		m.requests.WithLabelValues(op, method, code, f.status, f.code).Inc()
		m.duration.WithLabelValues(op, method, code).Observe(time.Since(start).Seconds())
		m.requestSize.WithLabelValues(op).Observe(float64(max(len(f.body), int(c.Request().ContentLength))))
		m.responseSize.WithLabelValues(op).Observe(float64(res.Size))
		return err
	}
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

func (s instrumented) PutOrderRetained(ctx context.Context, o domain.Order, retention time.Duration) (domain.Order, error) {
	o, err := s.Store.PutOrderRetained(ctx, o, retention)
	return o, s.count("put_order", err)
}

func (s instrumented) Answer(ctx context.Context, op, clientID, requestID string) ([]byte, error) {
	a, err := s.Store.Answer(ctx, op, clientID, requestID)
	if errors.Is(err, store.ErrNoAnswer) {
		return a, err // an answer to give, not a failure
	}
	return a, s.count("answer", err)
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
