package contract

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/openapi"
)

// TestServiceEndpoints: the contract the service publishes is the one it
// was built from, and the health endpoints say what they promise.
func TestServiceEndpoints(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()

	y, err := e.c.GetOpenAPIYAMLWithResponse(ctx)
	if err != nil || y.StatusCode() != http.StatusOK {
		t.Fatalf("/openapi.yaml: %v %v", err, y)
	}
	if !bytes.Equal(y.Body, openapi.Spec) {
		t.Error("/openapi.yaml is not the embedded contract byte for byte")
	}
	if ct := y.HTTPResponse.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("/openapi.yaml Content-Type %q", ct)
	}

	j, err := e.c.GetOpenAPIJSONWithResponse(ctx)
	if err != nil || j.StatusCode() != http.StatusOK {
		t.Fatalf("/openapi.json: %v %v", err, j)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(j.Body, &fromJSON); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	if err := yaml.Unmarshal(openapi.Spec, &fromYAML); err != nil {
		t.Fatal(err)
	}
	// Through JSON once, so both sides have JSON's types.
	b, _ := json.Marshal(fromYAML)
	_ = json.Unmarshal(b, &fromYAML)
	if diff := cmp.Diff(fromYAML, fromJSON); diff != "" {
		t.Errorf("/openapi.json is not the contract (-yaml +json):\n%s", diff)
	}

	d, err := e.c.GetDocsWithResponse(ctx)
	if err != nil || d.StatusCode() != http.StatusNotFound || !strings.Contains(string(d.Body), "make docs") {
		t.Errorf("/docs without a built page: %v %d %s", err, d.StatusCode(), d.Body)
	}

	m, err := e.c.GetMetricsWithResponse(ctx)
	if err != nil || m.StatusCode() != http.StatusOK || !strings.Contains(string(m.Body), "orderhub_http_requests_total") {
		t.Errorf("/metrics: %v %d", err, m.StatusCode())
	}
	for _, r := range []*http.Response{y.HTTPResponse, j.HTTPResponse, m.HTTPResponse} {
		if r.Header.Get("Signature") != "" || r.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: service endpoints are unsigned and carry an X-Request-Id: %v", r.Request.URL.Path, r.Header)
		}
	}
}

// TestReadinessFollowsRedis: /readyz turns 503 while Redis is down and 200
// again when it is back, without a restart; /healthz stays 200 throughout.
func TestReadinessFollowsRedis(t *testing.T) {
	e := newEnv(t)
	check := func(when string, wantReady int) {
		t.Helper()
		h, err := e.c.GetHealthzWithResponse(e.ctx())
		if err != nil || h.StatusCode() != http.StatusOK {
			t.Errorf("%s: /healthz %v %v", when, err, h.StatusCode())
		}
		r, err := e.c.GetReadyzWithResponse(e.ctx())
		if err != nil || r.StatusCode() != wantReady {
			t.Errorf("%s: /readyz %v %d %s, want %d", when, err, r.StatusCode(), r.Body, wantReady)
		}
	}
	check("Redis up", http.StatusOK)
	e.redis.Stop()
	check("Redis down", http.StatusServiceUnavailable)
	e.redis.Restart()
	check("Redis back", http.StatusOK)
}
