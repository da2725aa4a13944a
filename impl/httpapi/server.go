// Package httpapi is orderhub's HTTP face: the echo wiring, the handlers of
// the contract, request validation, idempotency, and the one table that maps
// errors to result envelopes. It is the only package that knows HTTP.
package httpapi

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderhub/orderhub/generated/server"
	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/faults"
	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
)

// Config is what the HTTP layer needs besides the store.
type Config struct {
	// Catalog is the contract (nil: openapi.Load).
	Catalog *openapi.Catalog
	// Clients are the partner callers and their keys (required).
	Clients *clients.Source
	// SigningKey signs every partner API response (required), as
	// SigningKeyVersion (default 1).
	SigningKey        *rsa.PrivateKey
	SigningKeyVersion int
	// EarlierKeys are orderhub's earlier public keys by version, published
	// at /public-keys beside the current one: replays keep the signature
	// they were first made with.
	EarlierKeys map[int]*rsa.PublicKey
	// TimeWindow is how far Request-Time may be from the server clock
	// (default 5 minutes); older or newer requests are refused.
	TimeWindow time.Duration
	// AdminToken guards the operator API; empty turns it off.
	AdminToken string
	// Lease bounds how long a request holds its requestId; past it, a
	// crashed request's claim expires by itself. Longer than any request.
	Lease time.Duration
	// Retention is how long final answers are remembered (0: forever).
	Retention time.Duration
	// FinalRetention is how long an order in a final status, and a trade's
	// delivery audits, are kept after their last write (0: forever); never
	// less than an answer stored about them.
	FinalRetention time.Duration
	// RequestTimeout bounds each request's work, storage calls included.
	RequestTimeout time.Duration
	// BodyLimit is the largest request body read, in bytes.
	BodyLimit int64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives request logs and unexpected errors (nil: discarded).
	Logger *slog.Logger
	// Metrics is the registry /metrics serves; orderhub registers its
	// series there (nil: a registry of its own).
	Metrics *prometheus.Registry
	// Docs is the HTML reference page served at /docs (nil: the partner
	// edition's page embedded in the binary, generated/partner).
	Docs []byte
	// RateLimit limits the partner API calls of each Client-Id and of all
	// together (nil: no limit).
	RateLimit ratelimit.Limiter
	// SignedRefusals bounds the RSA work a flood can buy with a registered
	// Client-Id it cannot sign for: refusals to such calls are signed at
	// most this many times a second per client, four times as many in all,
	// and unsigned past that (0: DefaultSignedRefusals).
	SignedRefusals int
	// Faults turns on the scripted faults of a test instance: the
	// operator API's fault rules (/ops/faults) and their step in the
	// request path. Off, the fault endpoints answer 404 and no call looks
	// at rules.
	Faults bool
}

// Defaults for the zero values of Config.
const (
	DefaultSigningKeyVersion = 1
	DefaultTimeWindow        = 5 * time.Minute
	DefaultLease             = 30 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultBodyLimit         = 64 << 10
	DefaultSignedRefusals    = 5
)

// ConfigError is a configuration value the service cannot work with.
type ConfigError struct {
	Field  string // the Config field at fault
	Reason string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Reason }

// New builds the HTTP handler of orderhub over st.
func New(st store.Store, cfg Config) (http.Handler, error) {
	if cfg.Clients == nil || cfg.SigningKey == nil {
		return nil, errors.New("httpapi: Clients and SigningKey are required: every partner message is signed")
	}
	if cfg.SigningKeyVersion <= 0 {
		cfg.SigningKeyVersion = DefaultSigningKeyVersion
	}
	if cfg.TimeWindow <= 0 {
		cfg.TimeWindow = DefaultTimeWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.SignedRefusals <= 0 {
		cfg.SignedRefusals = DefaultSignedRefusals
	}
	if _, ok := cfg.EarlierKeys[cfg.SigningKeyVersion]; ok {
		return nil, &ConfigError{"EarlierKeys", fmt.Sprintf("version %d is the current signing key's", cfg.SigningKeyVersion)}
	}
	if cfg.Lease <= cfg.RequestTimeout {
		return nil, &ConfigError{"Lease", fmt.Sprintf("%s must be longer than the request timeout (%s), or a slow request's requestId could be taken over while it runs", cfg.Lease, cfg.RequestTimeout)}
	}
	if cfg.Catalog == nil {
		var err error
		if cfg.Catalog, err = openapi.Load(); err != nil {
			return nil, err
		}
	}
	log := slog.New(RequestLogHandler(cfg.Logger.Handler()))
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Metrics, cfg.Catalog)
	if err != nil {
		return nil, fmt.Errorf("httpapi: registering metrics: %w", err)
	}
	st = instrumented{Store: st, errors: m.storeErrors}
	seal := sealer{
		Sealer:   signature.Sealer{Key: cfg.SigningKey, KeyVersion: cfg.SigningKeyVersion, Now: cfg.Now, Memo: &signature.Memo{}},
		clients:  cfg.Clients,
		refusals: newRefusalBudget(cfg.SignedRefusals, cfg.Now),
		made:     m.signatures,
		unsigned: m.unsignedRefusals,
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(seal, log)
	recoverPanics := middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.ErrorContext(c.Request().Context(), "panic", "err", err, "stack", string(stack))
			return err // answered U/UNKNOWN_EXCEPTION by the error table
		},
	})

	// The request path, outermost first. Echo routes before running these,
	// so c.Path() is the matched route.
	stack := []echo.MiddlewareFunc{
		recoverPanics, // a panic in the layers below
		requestIDs(cfg.Catalog),
		m.observe,       // sees the answer sent: requestLog handles errors
		requestLog(log), // one line per request; its error handler signs partner answers
		deadline(cfg.RequestTimeout),
		recoverPanics, // a panic below becomes a logged, signed U
		captureBody(cfg.BodyLimit),
		verifyRequests(cfg.Clients, cfg.TimeWindow, cfg.Now, m.signatureFailures), // raw bytes, before parsing
		rateLimit(cfg.RateLimit),
		validator(cfg.Catalog, cfg.AdminToken),
		wellFormed, // what the validator lets through: trailing data, bad UTF-8
	}
	h := &handlers{st: st, now: cfg.Now, seal: seal, catalog: cfg.Catalog, finalRetention: cfg.FinalRetention, idem: &idempotency{
		st: st, seal: seal, lease: cfg.Lease, retention: cfg.Retention, limiter: cfg.RateLimit, log: log, outcomes: m.idempotency,
	}}
	if cfg.Faults {
		injected, err := m.faultsInjected(cfg.Catalog.IDs(openapi.Partner))
		if err != nil {
			return nil, fmt.Errorf("httpapi: registering metrics: %w", err)
		}
		h.faults = faults.New(cfg.Now)
		stack = append(stack, injectFaults(h.faults, seal, injected)) // in place of the handler, for the calls a rule matches
	}
	e.Use(stack...)
	server.RegisterHandlers(e, server.NewStrictHandler(h, nil))
	if err := serviceEndpoints(e, st, m, cfg.Docs); err != nil {
		return nil, err
	}
	if err := publicKeys(e, &cfg.SigningKey.PublicKey, cfg.SigningKeyVersion, cfg.EarlierKeys); err != nil {
		return nil, err
	}
	return e, nil
}

// deadline bounds the request's context: storage calls give up in time and
// the caller gets U instead of waiting.
func deadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			parent := c.Request().Context()
			ctx, cancel := context.WithTimeout(parent, d)
			defer cancel()
			factsOf(c).extendDeadline = func(by time.Duration) (context.Context, context.CancelFunc) {
				return context.WithTimeout(parent, by+d)
			}
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

func errorText(err error) string {
	var he *echo.HTTPError
	if errors.As(err, &he) && he.Internal != nil {
		return fmt.Sprintf("%d: %v", he.Code, he.Internal)
	}
	return err.Error()
}
