package contract

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/generated/partner"
	"github.com/orderhub/orderhub/openapi"
)

// TestServiceEndpoints: the contract the service publishes is the partner
// edition it was built with (the full one only under /ops/, with the token),
// and the health endpoints say what they promise.
func TestServiceEndpoints(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()

	y, err := e.c.GetOpenAPIYAMLWithResponse(ctx)
	if err != nil || y.StatusCode() != http.StatusOK {
		t.Fatalf("/openapi.yaml: %v %v", err, y)
	}
	if !bytes.Equal(y.Body, partner.Spec) {
		t.Error("/openapi.yaml is not the embedded partner edition byte for byte")
	}
	if ct := y.HTTPResponse.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("/openapi.yaml Content-Type %q", ct)
	}
	j, err := e.c.GetOpenAPIJSONWithResponse(ctx)
	if err != nil || j.StatusCode() != http.StatusOK {
		t.Fatalf("/openapi.json: %v %v", err, j)
	}
	sameDocument(t, "/openapi.json", partner.Spec, j.Body)
	for path, body := range map[string][]byte{"/openapi.yaml": y.Body, "/openapi.json": j.Body} {
		for _, internal := range []string{"/ops", "adminToken", "x-internal", "/healthz", "/metrics"} {
			if bytes.Contains(body, []byte(internal)) {
				t.Errorf("%s names %q: the partner edition must leave the operator API and the health endpoints out", path, internal)
			}
		}
	}

	// The full edition, to the operator only.
	oy, err := e.c.GetOpsOpenAPIYAMLWithResponse(ctx, admin)
	if err != nil || oy.StatusCode() != http.StatusOK || !bytes.Equal(oy.Body, openapi.Spec) {
		t.Errorf("/ops/openapi.yaml with the token: %v %d, %d bytes; want openapi.Spec byte for byte", err, oy.StatusCode(), len(oy.Body))
	} else if ct := oy.HTTPResponse.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("/ops/openapi.yaml Content-Type %q", ct)
	}
	oj, err := e.c.GetOpsOpenAPIJSONWithResponse(ctx, admin)
	if err != nil || oj.StatusCode() != http.StatusOK {
		t.Fatalf("/ops/openapi.json with the token: %v %v", err, oj)
	}
	sameDocument(t, "/ops/openapi.json", openapi.Spec, oj.Body)
	for _, path := range []string{"/ops/openapi.yaml", "/ops/openapi.json"} {
		for _, token := range []string{"", "wr0ng"} {
			req := e.request(http.MethodGet, path, "", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			r := e.do(req)
			if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), `"ACCESS_DENIED"`) {
				t.Errorf("%s with token %q: %d %s, want 401 ACCESS_DENIED", path, token, r.status, r.body)
			}
		}
	}

	// The partner edition's reference page, embedded: whole through the
	// client (whose transport asks for gzip and unpacks it), compressed
	// when asked, plain otherwise.
	d, err := e.c.GetDocsWithResponse(ctx)
	if err != nil || d.StatusCode() != http.StatusOK || !bytes.Equal(d.Body, partner.Docs) {
		t.Errorf("/docs: %v %d, %d bytes; want the embedded page's %d", err, d.StatusCode(), len(d.Body), len(partner.Docs))
	}
	for ae, gzipped := range map[string]bool{"": false, "identity": false, "gzip": true, "br, gzip;q=0.5": true, "gzip;q=0": false, "GZIP": true, "deflate, br": false} {
		req := e.request(http.MethodGet, "/docs", "", nil)
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		// Not the conformance transport, nor Go's: the bytes as sent.
		res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatalf("/docs with Accept-Encoding %q: %v", ae, err)
		}
		body, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !slices.Contains(res.Header.Values("Vary"), "Accept-Encoding") {
			t.Errorf("/docs with Accept-Encoding %q: %d %v", ae, res.StatusCode, res.Header)
		}
		if got := res.Header.Get("Content-Encoding"); gzipped != (got == "gzip") || (!gzipped && got != "") {
			t.Errorf("/docs with Accept-Encoding %q: Content-Encoding %q", ae, got)
			continue
		}
		if res.ContentLength != int64(len(body)) {
			t.Errorf("/docs with Accept-Encoding %q: Content-Length %d, %d bytes", ae, res.ContentLength, len(body))
		}
		if gzipped {
			if len(body) > len(partner.Docs)/2 {
				t.Errorf("/docs gzipped: %d bytes of %d", len(body), len(partner.Docs))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("/docs gzipped: %v", err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("/docs gzipped: %v", err)
			}
		}
		if !bytes.Equal(body, partner.Docs) {
			t.Errorf("/docs with Accept-Encoding %q: not the embedded page", ae)
		}
	}

	m, err := e.c.GetMetricsWithResponse(ctx)
	if err != nil || m.StatusCode() != http.StatusOK || !strings.Contains(string(m.Body), "orderhub_http_requests_total") {
		t.Errorf("/metrics: %v %d", err, m.StatusCode())
	}
	for _, r := range []*http.Response{y.HTTPResponse, j.HTTPResponse, m.HTTPResponse, d.HTTPResponse} {
		if r.Header.Get("Signature") != "" || r.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: service endpoints are unsigned and carry an X-Request-Id: %v", r.Request.URL.Path, r.Header)
		}
	}
}

// sameDocument fails unless asJSON is the YAML document doc, converted.
func sameDocument(t *testing.T, path string, doc, asJSON []byte) {
	t.Helper()
	var fromJSON, fromYAML any
	if err := json.Unmarshal(asJSON, &fromJSON); err != nil {
		t.Fatalf("%s is not JSON: %v", path, err)
	}
	if err := yaml.Unmarshal(doc, &fromYAML); err != nil {
		t.Fatal(err)
	}
	// Through JSON once, so both sides have JSON's types.
	b, _ := json.Marshal(fromYAML)
	_ = json.Unmarshal(b, &fromYAML)
	if diff := cmp.Diff(fromYAML, fromJSON); diff != "" {
		t.Errorf("%s is not its YAML edition (-yaml +json):\n%s", path, diff)
	}
}

// TestPartnerEdition: the partner edition is a valid contract holding every
// partner operation, as the source has it, and no operator operation.
func TestPartnerEdition(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(partner.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the partner edition is invalid: %v", err)
	}
	cat, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	inEdition := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			inEdition[op.OperationID] = method + " " + path
		}
	}
	for _, op := range cat.Operations() {
		where, ok := inEdition[op.ID]
		switch {
		case op.Kind == openapi.Partner && (!ok || where != op.Method+" "+op.Path):
			t.Errorf("partner operation %s (%s %s) is not in the partner edition (%q)", op.ID, op.Method, op.Path, where)
		case op.Kind == openapi.Operator && ok:
			t.Errorf("operator operation %s is in the partner edition", op.ID)
		}
	}
	for _, id := range []string{"getHealthz", "getReadyz", "getMetrics"} {
		if _, ok := inEdition[id]; ok {
			t.Errorf("%s is in the partner edition", id)
		}
	}
	for _, id := range []string{"getOpenAPIYAML", "getOpenAPIJSON", "getDocs"} {
		if _, ok := inEdition[id]; !ok {
			t.Errorf("%s is not in the partner edition", id)
		}
	}
	// The message signature's three headers, and not the operator's token.
	var schemes []string
	if doc.Components != nil {
		for name := range doc.Components.SecuritySchemes {
			schemes = append(schemes, name)
		}
	}
	slices.Sort(schemes)
	if want := []string{"clientId", "requestTime", "signature"}; !slices.Equal(schemes, want) {
		t.Errorf("the partner edition's security schemes are %v, want %v", schemes, want)
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
