package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
)

// serviceEndpoints serves the contract's "service" operations: liveness,
// readiness, metrics, and the contract itself (YAML, JSON, HTML).
func serviceEndpoints(e *echo.Echo, st store.Store, m *metrics, docs []byte) error {
	asJSON, err := yamlToJSON(openapi.Spec)
	if err != nil {
		return fmt.Errorf("httpapi: the embedded contract as JSON: %w", err)
	}
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", func(c echo.Context) error {
		// The keys and clients are loaded before New returns; what can come
		// and go is the store.
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			return c.String(http.StatusServiceUnavailable, "store unreachable\n")
		}
		return c.String(http.StatusOK, "ready\n")
	})
	e.GET("/metrics", echo.WrapHandler(m.handler()))
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", openapi.Spec)
	})
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, asJSON)
	})
	e.GET("/docs", func(c echo.Context) error {
		if docs == nil {
			return c.String(http.StatusNotFound, "reference page not built; run make docs\n")
		}
		return c.HTMLBlob(http.StatusOK, docs)
	})
	return nil
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
