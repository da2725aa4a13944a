package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
)

// routes sorts the contract's endpoints by who calls them.
type routes struct {
	// partner maps the path of every partner API to its operationId: every
	// operation not tagged "operations" (the operator API) or "service".
	partner map[string]string
	// service holds the echo routes of the "service" endpoints (health,
	// metrics, docs): not signed, not partner messages.
	service map[string]bool
	// operation names the operation of a method and echo route.
	operation func(method, route string) string
}

func classify(spec *openapi3.T) routes {
	r := routes{partner: map[string]string{}, service: map[string]bool{}, operation: operations(spec)}
	for path, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			switch {
			case slices.Contains(op.Tags, "service"):
				r.service[echoRoute(path)] = true
			case !slices.Contains(op.Tags, "operations"):
				r.partner[path] = op.OperationID
			}
		}
	}
	return r
}

// echoRoute turns an OpenAPI path into echo's route syntax.
func echoRoute(path string) string {
	return strings.NewReplacer("{", ":", "}", "").Replace(path)
}

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
