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
// and registers the gauges of its nodes, read at each scrape.
func storeNodes(st store.Store, m *metrics) (nodePinger, error) {
	if in, ok := st.(instrumented); ok { // New wraps the store to count its errors
		st = in.Store
	}
	p, ok := st.(nodePinger)
	if !ok {
		return nil, nil
	}
	c := nodesCollector{
		p: p,
		nodes: prometheus.NewDesc("orderhub_store_nodes",
			"Store (Redis) masters known, as of this scrape.", nil, nil),
		unreachable: prometheus.NewDesc("orderhub_store_nodes_unreachable",
			"Store (Redis) masters that did not answer PING at this scrape; /readyz stays 200 until every one is unreachable.", nil, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return nil, fmt.Errorf("httpapi: registering metrics: %w", err)
	}
	return p, nil
}

// nodesCollector pings the store's nodes when scraped, so the gauges are
// as fresh as the scrape and cost nothing between scrapes.
type nodesCollector struct {
	p                  nodePinger
	nodes, unreachable *prometheus.Desc
}

func (c nodesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.nodes
	ch <- c.unreachable
}

func (c nodesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	nodes, unreachable, err := c.p.PingNodes(ctx)
	if err != nil {
		// The cluster's layout was never read: no masters to count. An
		// invalid metric would fail the whole scrape; /readyz and
		// orderhub_store_errors_total{call="ping"} tell this case.
		return
	}
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(nodes))
	ch <- prometheus.MustNewConstMetric(c.unreachable, prometheus.GaugeValue, float64(len(unreachable)))
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
