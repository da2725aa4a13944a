package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/impl/store"
)

// serviceEndpoints serves the contract's "service" operations: liveness,
// readiness, metrics, and the contract itself (YAML, JSON, HTML: the partner
// edition; the full one under /ops/, editions.go).
func serviceEndpoints(e *echo.Echo, st store.Store, m *metrics, docs []byte) error {
	if err := editionEndpoints(e, docs); err != nil {
		return err
	}
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	pinger, err := storeNodes(st, m)
	if err != nil {
		return err
	}
	e.GET("/readyz", func(c echo.Context) error {
		// The keys and clients are loaded before New returns; what can come
		// and go is the store.
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if pinger == nil {
			if err := st.Ping(ctx); err != nil {
				return c.String(http.StatusServiceUnavailable, "store unreachable\n")
			}
			return c.String(http.StatusOK, "ready\n")
		}
		// Ready while any master answers: a partial outage strikes every
		// instance alike, and taking them all out of the load balancer
		// would turn it into a total one. It shows in the body and in
		// orderhub_store_nodes_unreachable.
		nodes, unreachable, err := pinger.PingNodes(ctx)
		switch {
		case err != nil || len(unreachable) == nodes:
			m.storeErrors.WithLabelValues("ping").Inc()
			return c.String(http.StatusServiceUnavailable, "store unreachable\n")
		case len(unreachable) > 0:
			return c.String(http.StatusOK, fmt.Sprintf("ready; %d of %d store nodes unreachable: %s\n",
				len(unreachable), nodes, strings.Join(unreachable, ", ")))
		}
		return c.String(http.StatusOK, "ready\n")
	})
	e.GET("/metrics", echo.WrapHandler(m.handler()))
	return nil
}

// nodePinger is a store of several nodes that can tell which answer: Redis
// (store.Redis.PingNodes).
type nodePinger interface {
	PingNodes(ctx context.Context) (nodes int, unreachable []string, err error)
}

// storeNodes returns the store's nodePinger, nil if it has none (memory),
// and registers the store's gauges, read at each scrape: whether it answers
// and, for Redis, its masters known and unreachable.
func storeNodes(st store.Store, m *metrics) (nodePinger, error) {
	c := storeCollector{
		st: st,
		up: prometheus.NewDesc("orderhub_store_up",
			"1 when the store answers at this scrape (Redis: at least one master answers PING), else 0.", nil, nil),
		nodes: prometheus.NewDesc("orderhub_store_nodes",
			"Store (Redis) masters known, as of this scrape.", nil, nil),
		unreachable: prometheus.NewDesc("orderhub_store_nodes_unreachable",
			"Store (Redis) masters that did not answer PING at this scrape; /readyz stays 200 until every one is unreachable.", nil, nil),
	}
	if in, ok := st.(instrumented); ok { // New wraps the store to count its errors
		st = in.Store
	}
	c.p, _ = st.(nodePinger)
	if err := m.reg.Register(c); err != nil {
		return nil, fmt.Errorf("httpapi: registering metrics: %w", err)
	}
	return c.p, nil
}

// storeCollector pings the store when scraped, so the gauges are as fresh
// as the scrape and cost nothing between scrapes.
type storeCollector struct {
	st                     store.Store
	p                      nodePinger // nil: a store of one node
	up, nodes, unreachable *prometheus.Desc
}

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	if c.p != nil {
		ch <- c.nodes
		ch <- c.unreachable
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	if c.p == nil {
		up := 1.0
		if c.st.Ping(ctx) != nil { // counted in orderhub_store_errors_total{call="ping"}
			up = 0
		}
		gauge(c.up, up)
		return
	}
	nodes, unreachable, err := c.p.PingNodes(ctx)
	if err != nil {
		// The cluster's layout was never read: no masters to count.
		gauge(c.up, 0)
		return
	}
	gauge(c.up, boolGauge(len(unreachable) < nodes))
	gauge(c.nodes, float64(nodes))
	gauge(c.unreachable, float64(len(unreachable)))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// yamlToJSON converts the contract document as it is: no loader rewrites
// (servers, operationIds) on the way.
func yamlToJSON(doc []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	return json.MarshalIndent(v, "", "  ")
}
