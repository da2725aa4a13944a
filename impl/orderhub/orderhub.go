// Package orderhub assembles the service from its parts: the contract
// catalog, the store (Redis, or memory), the registry of partner clients,
// the rate limiter and the HTTP handler. The command reads the environment
// and owns signals and the listener; a test can call Open directly.
package orderhub

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/openapi"
)

// Config is what an orderhub is made of. Zero durations and sizes take
// httpapi's defaults.
type Config struct {
	// RedisURL names the Redis (one node or a cluster) that keeps the
	// state and shares the rate limits; empty keeps both in memory, lost on
	// exit: for trying orderhub out, not for production.
	RedisURL string
	// RedisMinReplicas is how many replicas of the record's master must
	// acknowledge a notification's commit before its answer (S, or a
	// stored F) is given or replayed; fewer in time answer U. 0: the
	// answer once the master has it. Needs RedisURL.
	RedisMinReplicas int
	// ClientsFile is the registry of partner callers and their keys
	// (required); Service.Clients reloads it.
	ClientsFile string
	// SigningKey signs every partner answer (required), as
	// SigningKeyVersion (0: 1).
	SigningKey        *rsa.PrivateKey
	SigningKeyVersion int
	// EarlierKeys are orderhub's earlier public keys by version, published
	// with the current one for replays signed before a rotation.
	EarlierKeys map[int]*rsa.PublicKey
	// AdminToken guards the operator API; empty turns it off.
	AdminToken string
	// Limits of the partner calls; the zero value is none.
	Limits ratelimit.Limits

	TimeWindow     time.Duration // how far Request-Time may be from the clock
	Lease          time.Duration // how long a request holds its requestId
	Retention      time.Duration // how long final answers are kept (0: forever)
	FinalRetention time.Duration // how long final orders and audits are kept after their last write (0: forever)
	RequestTimeout time.Duration // bounds each request's work
	BodyLimit      int64         // the largest request body read, in bytes

	// Logger receives the request log (nil: discarded).
	Logger *slog.Logger
	// Docs is the reference page served at /docs (nil: the partner
	// edition's, embedded).
	Docs []byte
	// Faults turns on the scripted faults of a test instance (the fault
	// rules of the operator API); never in production.
	Faults bool
}

// Service is an assembled orderhub.
type Service struct {
	// Handler serves the contract.
	Handler http.Handler
	// Clients is the registry in force; Reload reads the file again.
	Clients *clients.Source
	// Store and Limits say, in a line each, what is in use.
	Store, Limits string

	reloads *prometheus.CounterVec
	ping    func(context.Context) error
	close   func() error
}

// Open assembles an orderhub. A configuration it cannot work with is an
// *httpapi.ConfigError naming the Config field at fault.
func Open(cfg Config) (*Service, error) {
	cat, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	callers, err := clients.Open(cfg.ClientsFile, cat.IDs(openapi.Partner))
	if err != nil {
		return nil, &httpapi.ConfigError{Field: "ClientsFile", Reason: err.Error()}
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = httpapi.DefaultRequestTimeout
	}
	log := slog.New(slog.DiscardHandler)
	if cfg.Logger != nil {
		log = cfg.Logger
	}
	log = slog.New(httpapi.RequestLogHandler(log.Handler())) // store lines join their request's
	switch {
	case cfg.RedisMinReplicas < 0:
		return nil, &httpapi.ConfigError{Field: "RedisMinReplicas", Reason: fmt.Sprintf("%d is negative", cfg.RedisMinReplicas)}
	case cfg.RedisMinReplicas > 0 && cfg.RedisURL == "":
		// Refused rather than ignored: the operator asked for a guarantee
		// the in-memory store cannot give.
		return nil, &httpapi.ConfigError{Field: "RedisMinReplicas", Reason: "needs Redis: the in-memory store has no replicas"}
	}
	st, rdb, storeName, err := openStore(cfg.RedisURL, cfg.RedisMinReplicas, timeout, log)
	if err != nil {
		return nil, &httpapi.ConfigError{Field: "RedisURL", Reason: err.Error()}
	}
	limiter, limits := openLimiter(cfg.Limits, rdb)
	reg := prometheus.NewRegistry()
	reloads, err := clientMetrics(reg, callers)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	h, err := httpapi.New(st, httpapi.Config{
		Catalog:           cat,
		Clients:           callers,
		SigningKey:        cfg.SigningKey,
		SigningKeyVersion: cfg.SigningKeyVersion,
		EarlierKeys:       cfg.EarlierKeys,
		TimeWindow:        cfg.TimeWindow,
		AdminToken:        cfg.AdminToken,
		Lease:             cfg.Lease,
		Retention:         cfg.Retention,
		FinalRetention:    cfg.FinalRetention,
		RequestTimeout:    cfg.RequestTimeout,
		BodyLimit:         cfg.BodyLimit,
		Logger:            log,
		Metrics:           reg,
		Docs:              cfg.Docs,
		RateLimit:         limiter,
		Faults:            cfg.Faults,
	})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return &Service{Handler: h, Clients: callers, Store: storeName, Limits: limits, reloads: reloads, ping: st.Ping, close: st.Close}, nil
}

// clientMetrics registers the clients file's series: how many clients are
// registered, and reloads by result, both results at zero from the start.
func clientMetrics(reg *prometheus.Registry, callers *clients.Source) (*prometheus.CounterVec, error) {
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderhub_clients_reloads_total",
		Help: "Reloads of the clients file (ORDERHUB_CLIENTS, on SIGHUP), by result: success, or failure (the clients in force stay).",
	}, []string{"result"})
	reloads.WithLabelValues("success")
	reloads.WithLabelValues("failure")
	registered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orderhub_clients",
		Help: "Partner clients registered in the clients file in force, enabled or not.",
	}, func() float64 { return float64(callers.Current().Len()) })
	for _, c := range []prometheus.Collector{reloads, registered} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return reloads, nil
}

// ReloadClients reads the clients file again; on failure the clients in
// force stay. Either way it is counted in orderhub_clients_reloads_total.
func (s *Service) ReloadClients() error {
	err := s.Clients.Reload()
	result := "success"
	if err != nil {
		result = "failure"
	}
	s.reloads.WithLabelValues(result).Inc()
	return err
}

// Ping reports whether the store answers (always nil for memory).
func (s *Service) Ping(ctx context.Context) error { return s.ping(ctx) }

// Close releases the store's connections.
func (s *Service) Close() error { return s.close() }
