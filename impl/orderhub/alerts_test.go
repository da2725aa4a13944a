package orderhub_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/tests/redistest"
	"github.com/orderhub/orderhub/tests/testkit"
)

// TestREADMEAlertRules: the alert rules the README ships parse with
// Prometheus' own parser and read only series orderhub exports, every one
// of which exists before any traffic (an alert on a series that is absent
// until its first event never fires).
func TestREADMEAlertRules(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "**Alerts to start with.**")
	if !ok {
		t.Fatal("README has no alert rules")
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal([]byte(block), &rules); err != nil {
		t.Fatalf("the README's rules are not YAML: %v", err)
	}

	exported := scrapeNames(t)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				if vs, ok := node.(*parser.VectorSelector); ok && !exported[vs.Name] {
					t.Errorf("%s reads %s, which orderhub does not export", r.Alert, vs.Name)
				}
				return nil
			})
		}
	}
	if n < 4 {
		t.Errorf("%d alert rules, want at least the store, signature, U-rate and p99 ones", n)
	}
}

// scrapeNames are the series names an orderhub on Redis exports before
// any traffic (a histogram's _bucket, _sum and _count included).
func scrapeNames(t *testing.T) map[string]bool {
	t.Helper()
	srv := redistest.Start(t)
	own, caller := testkit.Key(t, 0), testkit.Key(t, 1)
	svc, err := orderhub.Open(orderhub.Config{
		RedisURL:    "redis://" + srv.Addr(),
		ClientsFile: testkit.ClientsFile(t, testkit.Entry(t, "isv-1", &caller.PublicKey)),
		SigningKey:  own,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	rec := httptest.NewRecorder()
	svc.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		names[name] = true
		if f.GetMetric()[0].Histogram != nil {
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		}
	}
	return names
}
