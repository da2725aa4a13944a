package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/conformance"
)

// floodRequests is how many requests each flood sends: far more than any
// budget of signed refusals.
const floodRequests = 300

// TestFloodsBuyBoundedSignatures sends each kind of flood a caller without
// orderhub's trust can send, and counts the RSA signatures it bought: none
// for strangers, at most the burst of the refusal budget for a registered
// Client-Id used by someone who cannot sign for it. The clock stands still,
// so the budget never refills: the bound is exact, not a matter of timing.
func TestFloodsBuyBoundedSignatures(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return at }
	paths := []string{"/v2/pds/order/notifyOrderCompletion", "/v2/pos/inquireOrderDetail", "/v1/delivery/notifyDeliveryAuditResult", "/v2/pos/nope", "/", "/v2/pos/inquireOrderDetail/../x"}
	methods := []string{http.MethodPost, http.MethodPost, http.MethodGet, http.MethodPut, "BREW"}
	for _, tc := range []struct {
		name string
		// request makes the flood's i-th request.
		request func(i int) *http.Request
		// most is the most RSA signatures the flood may buy.
		most float64
	}{
		{"no headers", func(i int) *http.Request {
			return httptest.NewRequest(http.MethodPost, paths[i%3], strings.NewReader(`{}`))
		}, 0},
		{"unknown Client-Ids", func(i int) *http.Request {
			req := httptest.NewRequest(methods[i%len(methods)], paths[i%len(paths)], strings.NewReader(fmt.Sprintf(`{"requestOrderId":"o%d"}`, i)))
			req.Header.Set("Client-Id", fmt.Sprintf("isv-%d", i))
			req.Header.Set("Signature", "algorithm=RSA256, keyVersion=1, signature=YWJj")
			return req
		}, 0},
		{"a registered Client-Id, garbage signatures, varied paths and methods", func(i int) *http.Request {
			req := httptest.NewRequest(methods[i%len(methods)], paths[i%len(paths)], strings.NewReader(fmt.Sprintf(`{"requestOrderId":"o%d"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Client-Id", "c")
			req.Header.Set("Request-Time", signature.FormatTime(at))
			req.Header.Set("Signature", fmt.Sprintf("algorithm=RSA256, keyVersion=1, signature=%x", i))
			return req
		}, 2 * DefaultSignedRefusals},
		{"a registered Client-Id, bodies over the limit", func(i int) *http.Request {
			req := httptest.NewRequest(http.MethodPost, paths[i%3], strings.NewReader(fmt.Sprintf(`{"pad":"%s%d"}`, strings.Repeat("x", DefaultBodyLimit), i)))
			req.Header.Set("Client-Id", "c")
			return req
		}, 2 * DefaultSignedRefusals},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &observed{}
			o.testService = newTestServiceOn(t, store.NewMemory(nil), func(c *Config) {
				c.Now, c.Logger = now, slog.New(slog.NewJSONHandler(o, nil))
			})
			start := time.Now()
			for i := range floodRequests {
				req := tc.request(i)
				rec := httptest.NewRecorder()
				o.ServeHTTP(rec, req)
				if strings.Contains(rec.Body.String(), `"resultStatus":"S"`) {
					t.Fatalf("request %d of the flood succeeded: %s", i, rec.Body)
				}
				if req.Header.Get("Client-Id") != "c" {
					if err := conformance.CheckUnsigned(rec.Header()); err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
				}
			}
			elapsed := time.Since(start)
			m := scrape(t, o)
			if made := value(m, "orderhub_signatures_total", map[string]string{"how": "signed"}); made > tc.most {
				t.Errorf("%d requests bought %v RSA signatures, want at most %v", floodRequests, made, tc.most)
			}
			unsigned := value(m, "orderhub_unsigned_refusals_total", nil)
			if tc.most == 0 && unsigned != floodRequests {
				t.Errorf("unsigned refusals counted %v, want %d", unsigned, floodRequests)
			}
			// Refusals to strangers are logged by sample: a line a second
			// at most, whatever the flood.
			if lines, most := len(o.requestLines(t)), int(elapsed/time.Second)+2; tc.most == 0 && lines > most {
				t.Errorf("%d log lines for %d refusals in %s, want at most %d", lines, floodRequests, elapsed, most)
			}
			// The client's own signed call is answered signed all the same.
			good := o.call(t, http.MethodPost, "/v2/pos/inquireOrderDetail", `{"requestOrderId":"none"}`, true)
			res := good.Result()
			res.Request = httptest.NewRequest(http.MethodPost, "/v2/pos/inquireOrderDetail", nil)
			if err := signature.VerifyResponse(res, good.Body.Bytes(), o.pub); err != nil {
				t.Errorf("the client's own call after the flood: %v (%s)", err, good.Body)
			}
		})
	}
}

// TestRefusalBudgetPerClient: a registered client past its budget gets its
// refusals unsigned (its Client-Id still echoed), another client's budget is
// untouched, and the budget refills with time.
func TestRefusalBudgetPerClient(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b := newRefusalBudget(5, func() time.Time { return at })
	for i := range 10 {
		if !b.allow("a") {
			t.Fatalf("refusal %d of a's burst of 10 refused", i+1)
		}
	}
	if b.allow("a") {
		t.Error("an 11th signed refusal for a within the same instant")
	}
	if !b.allow("b") {
		t.Error("b's budget spent by a's flood")
	}
	at = at.Add(time.Second)
	if !b.allow("a") {
		t.Error("a's budget did not refill after a second")
	}
}
